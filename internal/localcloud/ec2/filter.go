package ec2

import "strings"

// attrs returns a resource's values for a filter name (tag filters are
// handled by matchFilters itself).
type attrs func(name string) []string

// matchFilters reports whether a resource passes every filter: filters are
// ANDed, a filter's values ORed, and each value may hold EC2's wildcards.
func matchFilters(fs []filter, tags map[string]string, get attrs) bool {
	for _, f := range fs {
		var have []string
		switch {
		case strings.HasPrefix(f.Name, "tag:"):
			if v, ok := tags[f.Name[4:]]; ok {
				have = []string{v}
			}
		case f.Name == "tag-key":
			for k := range tags {
				have = append(have, k)
			}
		case f.Name == "tag-value":
			for _, v := range tags {
				have = append(have, v)
			}
		default:
			have = get(f.Name)
		}
		if !anyMatch(f.Values, have) {
			return false
		}
	}
	return true
}

func anyMatch(patterns, have []string) bool {
	for _, p := range patterns {
		for _, h := range have {
			if globMatch(p, h) {
				return true
			}
		}
	}
	return false
}

// globMatch matches s against an EC2 filter value: '*' is any run of
// characters, '?' exactly one, and a backslash makes the next character
// (including '*', '?' and '\') literal. It runs in O(len(p)·len(s)) time
// whatever the pattern.
func globMatch(p, s string) bool {
	type tok struct {
		c    rune
		kind byte // 'c' literal, '*', '?'
	}
	var toks []tok
	rs := []rune(p)
	for i := 0; i < len(rs); i++ {
		switch rs[i] {
		case '\\':
			if i+1 < len(rs) {
				i++
			}
			toks = append(toks, tok{rs[i], 'c'})
		case '*':
			if len(toks) == 0 || toks[len(toks)-1].kind != '*' {
				toks = append(toks, tok{kind: '*'})
			}
		case '?':
			toks = append(toks, tok{kind: '?'})
		default:
			toks = append(toks, tok{rs[i], 'c'})
		}
	}
	str := []rune(s)
	// Classic greedy match with one backtrack point: the last star.
	ti, si := 0, 0
	star, mark := -1, 0
	for si < len(str) {
		switch {
		case ti < len(toks) && (toks[ti].kind == '?' || toks[ti].kind == 'c' && toks[ti].c == str[si]):
			ti++
			si++
		case ti < len(toks) && toks[ti].kind == '*':
			star, mark = ti, si
			ti++
		case star >= 0:
			ti = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for ti < len(toks) && toks[ti].kind == '*' {
		ti++
	}
	return ti == len(toks)
}
