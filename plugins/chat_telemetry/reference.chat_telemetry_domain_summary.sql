-- Reference for public.chat_telemetry_domain_summary (the original column list), written
-- independently of the view, for the tests to compare with the view row for row (EXCEPT ALL
-- both ways). now() must be the refresh's: run REFRESH and this query in one transaction.
-- Whatever chat_telemetry's numeric column types, it reads costs and durations as numeric
-- and counts as whole numbers, as the view does. One SELECT in the view's column order, no
-- trailing semicolon.
WITH per_domain AS (
	SELECT domain,
	       count(*) AS n,
	       sum(CASE WHEN success THEN 1 ELSE 0 END) AS n_ok,
	       sum(CAST(cost_usd AS numeric)) AS cost,
	       count(cost_usd) AS n_cost,
	       max(cost_usd) AS max_cost,
	       sum(input_tokens::bigint) AS tin,
	       sum(output_tokens::bigint) AS tout,
	       sum(CAST(duration_ms AS numeric)) AS dur,
	       max(duration_ms) AS max_dur,
	       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY duration_ms::float8)
	           AS dur_pct,
	       sum(search_count::bigint) AS searches,
	       sum(iteration_count::bigint) AS iterations,
	       count(DISTINCT model) AS models,
	       min(created_at) AS first_at,
	       max(created_at) AS last_at,
	       sum(CASE WHEN created_at >= now() - interval '1 day' THEN 1 ELSE 0 END) AS n_24h,
	       sum(CASE WHEN created_at >= now() - interval '1 day'
	                THEN CAST(cost_usd AS numeric) END)
	           AS cost_24h,
	       sum(CASE WHEN created_at >= now() - interval '168 hours' THEN 1 ELSE 0 END) AS n_7d,
	       sum(CASE WHEN created_at >= now() - interval '168 hours'
	                THEN CAST(cost_usd AS numeric) END)
	           AS cost_7d
	FROM public.chat_telemetry
	GROUP BY domain
),
top_model AS (
	SELECT DISTINCT ON (domain) domain, model
	FROM public.chat_telemetry
	GROUP BY domain, model
	ORDER BY domain, count(*) DESC, model
)
SELECT d.domain,
       d.n AS total_requests_all_time,
       d.n_ok AS successful_requests_all_time,
       round(d.n_ok * 100.0 / d.n, 2) AS success_rate_pct,
       coalesce(d.cost, 0) AS total_cost_usd_all_time,
       round(d.cost / nullif(d.n_cost, 0), 6) AS avg_cost_per_request,
       CAST(d.max_cost AS numeric) AS max_cost_single_request,
       d.tin AS total_input_tokens,
       d.tout AS total_output_tokens,
       d.tin + d.tout AS total_tokens,
       round((d.tin + d.tout)::numeric / d.n, 1) AS avg_tokens_per_request,
       round(d.dur / d.n, 1) AS avg_duration_ms,
       round(d.dur_pct[1]::numeric, 1) AS median_duration_ms,
       round(d.dur_pct[2]::numeric, 1) AS p95_duration_ms,
       CAST(d.max_dur AS integer) AS max_duration_ms,
       round(d.searches::numeric / d.n, 2) AS avg_searches_per_request,
       d.searches AS total_searches,
       round(d.iterations::numeric / d.n, 2) AS avg_iterations_per_request,
       m.model AS most_used_model,
       d.models AS unique_models_used,
       d.first_at AS first_request_at,
       d.last_at AS last_request_at,
       d.n_24h AS requests_last_24h,
       coalesce(d.cost_24h, 0) AS cost_last_24h,
       d.n_7d AS requests_last_7d,
       coalesce(d.cost_7d, 0) AS cost_last_7d,
       now() AS materialized_at
FROM per_domain d
JOIN top_model m USING (domain)
