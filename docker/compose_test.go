package docker_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const composeFile = "docker-compose.yml"

// compose returns the command that runs Docker Compose: Debian's
// docker-compose, else the `docker compose` plugin. It skips the test when
// neither is installed. Neither needs a running Docker engine for `config`.
func compose(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	if path, err := exec.LookPath("docker-compose"); err == nil {
		return exec.CommandContext(ctx, path, append([]string{"-f", composeFile}, args...)...)
	}
	if path, err := exec.LookPath("docker"); err == nil {
		if exec.CommandContext(ctx, path, "compose", "version").Run() == nil {
			return exec.CommandContext(ctx, path, append([]string{"compose", "-f", composeFile}, args...)...)
		}
	}
	t.Skip("neither docker-compose nor the docker compose plugin is installed")
	return nil
}

func output(t *testing.T, cmd *exec.Cmd, env ...string) string {
	t.Helper()
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s: %s", cmd, stderr.String())
	return string(out)
}

func TestComposeFileIsValid(t *testing.T) {
	output(t, compose(t, "config", "-q"))

	services := strings.Fields(output(t, compose(t, "config", "--services")))
	assert.ElementsMatch(t, []string{"kafka", "orders", "jaeger"}, services)

	// The resolved file: the service reaches the broker and Jaeger by their
	// service names, and the admin token comes from the shell.
	cfg := output(t, compose(t, "config"), "KAFKA_ADMIN_TOKEN=from-the-shell")
	for _, want := range []string{
		"KAFKA_BROKERS: kafka:9092",
		"KAFKA_ADMIN_TOKEN: from-the-shell",
		"OTEL_EXPORTER_OTLP_ENDPOINT: http://jaeger:4318",
		"KAFKA_ADVERTISED_LISTENERS: PLAINTEXT://kafka:9092,HOST://localhost:29092",
		"dockerfile: docker/Dockerfile",
		"condition: service_healthy",
	} {
		assert.Contains(t, cfg, want)
	}
}

// TestComposeFileNeedsNoSecret checks, without Docker, that the compose file
// holds no token and the images are pinned.
func TestComposeFileNeedsNoSecret(t *testing.T) {
	raw, err := os.ReadFile(composeFile)
	require.NoError(t, err)
	file := string(raw)
	assert.Contains(t, file, "KAFKA_ADMIN_TOKEN: ${KAFKA_ADMIN_TOKEN:-}")
	for _, m := range regexp.MustCompile(`(?m)^\s*image:\s*(\S+)`).FindAllStringSubmatch(file, -1) {
		_, tag, ok := strings.Cut(m[1], ":")
		assert.True(t, ok && tag != "" && tag != "latest", "image %s is not pinned to a version", m[1])
	}
}

// TestDockerfileBuildsLikeMakeBuild checks that the image is built with the
// command of `make build`, flags included.
func TestDockerfileBuildsLikeMakeBuild(t *testing.T) {
	makefile, err := os.ReadFile("../Makefile")
	require.NoError(t, err)
	dockerfile, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)

	outputFlag := regexp.MustCompile(`\s-o\s+\S+`)
	normalise := func(line string) string {
		line = strings.ReplaceAll(line, "$(GO)", "go")
		line = outputFlag.ReplaceAllString(line, "")
		return strings.Join(strings.Fields(line), " ")
	}
	find := func(text, prefix string) string {
		for line := range strings.SplitSeq(text, "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, prefix) && strings.Contains(line, "./examples/orders") {
				return normalise(strings.TrimPrefix(line, prefix))
			}
		}
		return ""
	}
	fromMake := find(string(makefile), "CGO_ENABLED=0")
	require.NotEmpty(t, fromMake, "no build command of ./examples/orders in the Makefile")
	fromDocker := find(string(dockerfile), "RUN CGO_ENABLED=0")
	require.NotEmpty(t, fromDocker, "no build command of ./examples/orders in the Dockerfile")
	assert.Equal(t, fromMake, fromDocker)
	assert.Contains(t, fromDocker, "-trimpath -ldflags='-s -w'")

	assert.Contains(t, string(dockerfile), "USER nonroot:nonroot", "the final image runs as a non-root user")
}
