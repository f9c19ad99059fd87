# Medians of run.sh's raw output, per variant, benchmark and unit; then the
# store's time against cp -a and rsync -a: the median of the per-round
# ratios (store time / other time, each pair from one process) and the
# speed that means (1 / ratio).
function median(arr, n,   i, j, t, v) {
	for (i = 1; i <= n; i++) v[i] = arr[i]
	for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
	return n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
}
function med(key,   i, a) {
	for (i = 1; i <= cnt[key]; i++) a[i] = val[key, i]
	return median(a, cnt[key])
}
/^([a-z]+:)?Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++names] = name }
	for (i = 3; i < NF; i += 2) {
		key = name SUBSEP $(i+1)
		if (!(key in cnt)) units[name] = units[name] " " $(i+1)
		val[key, ++cnt[key]] = $i
	}
}
END {
	for (k = 1; k <= names; k++) {
		name = order[k]
		printf "%s  (n=%d)\n", name, cnt[name, "ns/op"]
		split(substr(units[name], 2), u, " ")
		for (i = 1; i in u; i++) {
			m = med(name SUBSEP u[i])
			if (u[i] == "ns/op") printf "    %10.3f s/op\n", m / 1e9
			else printf "    %10.3f %s\n", m, u[i]
		}
	}
	print ""
	for (k = 1; k <= names; k++) {
		name = order[k]
		if (name ~ /SnapshotFull|RestoreFull/) { other = "BenchmarkCpA"; split("plain sync", vs, " ") }
		else if (name ~ /Incremental1Pct/) { other = "BenchmarkRsyncOneBehind"; split("plain fsync", vs, " ") }
		else continue
		variant = ""
		if (name ~ /^[a-z]+:/) { variant = name; sub(/:.*/, ":", variant) }
		size = name; sub(/^[^\/]*\//, "", size)
		for (i = 1; i in vs; i++) {
			o = variant other "/" size "/" vs[i]
			n = cnt[name, "ns/op"]
			if (cnt[o, "ns/op"] < n) n = cnt[o, "ns/op"]
			if (n == 0) continue
			delete r
			for (j = 1; j <= n; j++) r[j] = val[name, "ns/op", j] / val[o, "ns/op", j]
			m = median(r, n)
			printf "%-42s / %-48s time ratio %.2f (speed %.2fx), n=%d\n", name, o, m, 1 / m, n
		}
	}
}
