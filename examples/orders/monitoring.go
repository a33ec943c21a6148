package main

import (
	"log/slog"

	"github.com/labstack/echo/v4"

	"github.com/torix/kafkaevents"
)

func mountMonitoring(e *echo.Echo, stack *kafkaevents.Stack, cfg kafkaevents.Config, logger *slog.Logger) {
}
