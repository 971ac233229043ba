-- Reference for public.chat_telemetry_model_summary (the original column list), written
-- independently of the view, for the tests to compare with the view row for row (EXCEPT ALL
-- both ways). now() must be the refresh's: run REFRESH and this query in one transaction.
-- Whatever chat_telemetry's numeric column types, it reads costs and durations as numeric
-- and counts as whole numbers, as the view does. One SELECT in the view's column order, no
-- trailing semicolon.
WITH per_model AS (
	SELECT model,
	       count(*) AS n,
	       sum(CASE WHEN success THEN 1 ELSE 0 END) AS n_ok,
	       sum(CAST(cost_usd AS numeric)) AS cost,
	       count(cost_usd) AS n_cost,
	       sum(CASE WHEN cost_usd IS NOT NULL
	                THEN input_tokens::bigint + output_tokens::bigint END)
	           AS priced_tokens,
	       sum(input_tokens::bigint) AS tin,
	       sum(output_tokens::bigint) AS tout,
	       sum(CAST(duration_ms AS numeric)) AS dur,
	       sum(search_count::bigint) AS searches,
	       sum(iteration_count::bigint) AS iterations,
	       min(created_at) AS first_at,
	       max(created_at) AS last_at,
	       sum(CASE WHEN created_at >= now() - interval '1 day' THEN 1 ELSE 0 END) AS n_24h,
	       sum(CASE WHEN created_at >= now() - interval '168 hours' THEN 1 ELSE 0 END) AS n_7d
	FROM public.chat_telemetry
	GROUP BY model
),
domains AS (
	SELECT model, count(*) AS n_domains
	FROM (SELECT DISTINCT model, domain FROM public.chat_telemetry) md
	GROUP BY model
),
-- The continuous 95th percentile by its definition, in double precision: interpolate
-- between the values at 0-based ranks floor(0.95 (n - 1)) and ceil(0.95 (n - 1)).
ranked AS (
	SELECT model, duration_ms::float8 AS duration_ms,
	       row_number() OVER (PARTITION BY model ORDER BY duration_ms::float8) - 1 AS r,
	       0.95::float8 * (count(*) OVER (PARTITION BY model) - 1)::float8 AS pos
	FROM public.chat_telemetry
),
p95 AS (
	SELECT model,
	       min(duration_ms) FILTER (WHERE r = floor(pos))
	       + (min(duration_ms) FILTER (WHERE r = ceil(pos))
	          - min(duration_ms) FILTER (WHERE r = floor(pos)))
	         * (min(pos) - floor(min(pos))) AS v
	FROM ranked
	GROUP BY model
)
SELECT m.model,
       m.n AS total_uses,
       dm.n_domains AS unique_domains,
       m.n_ok AS successful_requests,
       round(m.n_ok * 100.0 / m.n, 2) AS success_rate_pct,
       coalesce(m.cost, 0) AS total_cost,
       round(m.cost / nullif(m.n_cost, 0), 6) AS avg_cost_per_request,
       round(m.cost * 1000 / nullif(m.priced_tokens, 0), 6) AS cost_per_1k_tokens,
       round(m.dur / m.n, 1) AS avg_duration_ms,
       round(p.v::numeric, 1) AS p95_duration_ms,
       round((m.tin + m.tout)::numeric / m.n, 1) AS avg_tokens_per_request,
       round(m.tin::numeric / m.n, 1) AS avg_input_tokens,
       round(m.tout::numeric / m.n, 1) AS avg_output_tokens,
       m.tin + m.tout AS total_tokens,
       round(m.searches::numeric / m.n, 2) AS avg_searches_per_request,
       round(m.iterations::numeric / m.n, 2) AS avg_iterations_per_request,
       m.first_at AS first_used_at,
       m.last_at AS last_used_at,
       m.n_24h AS uses_last_24h,
       m.n_7d AS uses_last_7d,
       now() AS materialized_at
FROM per_model m
JOIN domains dm USING (model)
JOIN p95 p USING (model)
