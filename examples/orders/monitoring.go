package main

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/labstack/echo/v4"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/health"
)

// mountMonitoring puts the /kafka endpoints, and the operator console at
// /kafka/ui/ unless KAFKA_MONITORING_UI=false, on e unless monitoring is off.
// Admin actions are written to logger as audit lines.
func mountMonitoring(e *echo.Echo, stack *kafkaevents.Stack, cfg kafkaevents.Config, logger *slog.Logger) (health.Config, error) {
	if !cfg.MonitoringEnabled() {
		logger.Info("monitoring endpoints disabled (KAFKA_MONITORING_ENABLED=false)")
		return health.Config{}, nil
	}
	hc := health.DefaultConfig
	hc.Source = stack
	hc.Prefix = cfg.Monitoring.Prefix
	hc.AdminToken = cfg.Monitoring.AdminToken
	hc.UI = kafkaevents.Bool(cfg.MonitoringUIEnabled())
	hc.TraceURL = cfg.Monitoring.TraceURL
	hc.Logger = watermill.NewSlogLogger(logger)
	return hc, health.Register(e, hc)
}
