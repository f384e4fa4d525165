package bench

import (
	"fmt"
	"slices"
)

// Pick is f of each result: one figure across repeats.
func Pick(rs []Result, f func(Result) float64) []float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return v
}

// Median is the median of v (0 for none).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Spread formats the median of v and, over more than one repeat, min-max.
func Spread(v []float64, format string) string {
	m := fmt.Sprintf(format, Median(v))
	if len(v) < 2 {
		return m
	}
	return fmt.Sprintf("%s ("+format+"-"+format+")", m, slices.Min(v), slices.Max(v))
}
