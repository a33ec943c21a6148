//go:build race

package chaos_test

// raceEnabled builds the reference service with -race too.
const raceEnabled = true
