package main

import (
	"log/slog"

	"github.com/labstack/echo/v4"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/health"
)

// mountMonitoring puts the /kafka endpoints on e unless monitoring is off.
func mountMonitoring(e *echo.Echo, stack *kafkaevents.Stack, cfg kafkaevents.Config, logger *slog.Logger) (health.Config, error) {
	if !cfg.MonitoringEnabled() {
		logger.Info("monitoring endpoints disabled (KAFKA_MONITORING_ENABLED=false)")
		return health.Config{}, nil
	}
	hc := health.DefaultConfig
	hc.Source = stack
	hc.Prefix = cfg.Monitoring.Prefix
	hc.AdminToken = cfg.Monitoring.AdminToken
	return hc, health.Register(e, hc)
}
