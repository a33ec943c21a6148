package wire

import "time"

// AppendTime appends t in TimeFormat (RFC 3339, UTC, milliseconds) to b, as
// t.UTC().Format(TimeFormat) would. It exists for the failure path, which
// runs at the bottom of a handler's goroutine: time.Format's general layout
// interpreter has a frame large enough to make that small stack grow by
// copying, while this needs a few bytes. Years outside 0..9999 fall back to
// time.Format.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeFormat)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, ms, 3)
	return append(b, 'Z')
}

// appendDigits appends the width lowest decimal digits of v (v >= 0),
// zero-padded.
func appendDigits(b []byte, v, width int) []byte {
	var buf [4]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, buf[:width]...)
}
