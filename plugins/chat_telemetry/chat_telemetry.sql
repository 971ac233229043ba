-- chat_telemetry: public.chat_telemetry_domain_summary and public.chat_telemetry_model_summary,
-- the chat dashboard's per-domain and per-model statistics over public.chat_telemetry.
--
-- Conventions of both views:
--   * a request is a chat_telemetry row; successful means success = true;
--   * costs count the requests whose cost is known (cost_usd NULL: price unknown when
--     logged); totals and window sums are 0, not NULL, when there is nothing to add;
--   * tokens are input_tokens + output_tokens;
--   * durations are in milliseconds; medians and p95 are continuous (interpolated)
--     percentiles;
--   * the windows (last 24 hours, last 7 days) and materialized_at are relative to the
--     refresh's transaction start, now(): a row is "last 24h" if created_at >= now() - 24 h.
--   * chat_telemetry's numeric columns may be numeric, double precision, real or integer in
--     a production schema: costs and durations are read as numeric (a double as its 15
--     significant digits, a real as 6), so sums are exact and independent of row order;
--     counts (tokens, searches, iterations) as whole numbers; so every column of the views
--     has one type whatever the table's (max_duration_ms is whole milliseconds).
--
-- Installed by `pgcrond install`: one DO block, creating only what is missing (no NOTICE on
-- a second run, no change to an existing view). Both views are refreshed CONCURRENTLY using
-- their unique indexes on domain and on model (both NOT NULL in chat_telemetry).
DO $install$
BEGIN
	IF to_regclass('public.chat_telemetry_domain_summary') IS NULL THEN
		CREATE MATERIALIZED VIEW public.chat_telemetry_domain_summary AS
		SELECT t.domain,
		       count(*) AS total_requests_all_time,
		       count(*) FILTER (WHERE t.success) AS successful_requests_all_time,
		       round(100.0 * count(*) FILTER (WHERE t.success) / count(*), 2) AS success_rate_pct,
		       coalesce(sum(t.cost_usd::numeric), 0) AS total_cost_usd_all_time,
		       round(avg(t.cost_usd::numeric), 6) AS avg_cost_per_request,
		       max(t.cost_usd::numeric) AS max_cost_single_request,
		       sum(t.input_tokens::integer) AS total_input_tokens,
		       sum(t.output_tokens::integer) AS total_output_tokens,
		       sum(t.input_tokens::bigint + t.output_tokens::bigint) AS total_tokens,
		       round(avg(t.input_tokens::bigint + t.output_tokens::bigint), 1)
		           AS avg_tokens_per_request,
		       round(avg(t.duration_ms::numeric), 1) AS avg_duration_ms,
		       round(cast(percentile_cont(0.5) WITHIN GROUP (ORDER BY t.duration_ms::float8)
		                  AS numeric), 1) AS median_duration_ms,
		       round(cast(percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms::float8)
		                  AS numeric), 1) AS p95_duration_ms,
		       max(t.duration_ms::integer) AS max_duration_ms,
		       round(avg(t.search_count::integer), 2) AS avg_searches_per_request,
		       sum(t.search_count::integer) AS total_searches,
		       round(avg(t.iteration_count::integer), 2) AS avg_iterations_per_request,
		       mode() WITHIN GROUP (ORDER BY t.model) AS most_used_model,
		       count(DISTINCT t.model) AS unique_models_used,
		       min(t.created_at) AS first_request_at,
		       max(t.created_at) AS last_request_at,
		       count(*) FILTER (WHERE t.created_at >= now() - interval '24 hours')
		           AS requests_last_24h,
		       coalesce(sum(t.cost_usd::numeric)
		                    FILTER (WHERE t.created_at >= now() - interval '24 hours'), 0)
		           AS cost_last_24h,
		       count(*) FILTER (WHERE t.created_at >= now() - interval '7 days')
		           AS requests_last_7d,
		       coalesce(sum(t.cost_usd::numeric)
		                    FILTER (WHERE t.created_at >= now() - interval '7 days'), 0)
		           AS cost_last_7d,
		       now() AS materialized_at
		FROM public.chat_telemetry t
		GROUP BY t.domain
		WITH NO DATA;

		COMMENT ON MATERIALIZED VIEW public.chat_telemetry_domain_summary IS
			'Per domain: chat requests, success, cost, tokens, latency, searches and recent '
			'activity; kept by pgcrond plugin chat_telemetry';
		COMMENT ON COLUMN public.chat_telemetry_domain_summary.success_rate_pct IS
			'100 * successful / total requests, two decimals';
		COMMENT ON COLUMN public.chat_telemetry_domain_summary.avg_cost_per_request IS
			'Mean cost_usd over the requests whose cost is known';
		COMMENT ON COLUMN public.chat_telemetry_domain_summary.most_used_model IS
			'The model of the most requests; on a tie, the first by name';
		COMMENT ON COLUMN public.chat_telemetry_domain_summary.requests_last_24h IS
			'Requests with created_at >= the refresh''s now() - 24 hours';
		COMMENT ON COLUMN public.chat_telemetry_domain_summary.materialized_at IS
			'now() of the refresh that computed this row';
	END IF;

	IF to_regclass('public.idx_chat_telemetry_domain_summary_domain') IS NULL THEN
		CREATE UNIQUE INDEX idx_chat_telemetry_domain_summary_domain
			ON public.chat_telemetry_domain_summary (domain);
	END IF;
	IF to_regclass('public.idx_chat_telemetry_domain_summary_cost') IS NULL THEN
		CREATE INDEX idx_chat_telemetry_domain_summary_cost
			ON public.chat_telemetry_domain_summary (total_cost_usd_all_time DESC);
	END IF;
	IF to_regclass('public.idx_chat_telemetry_domain_summary_recent') IS NULL THEN
		CREATE INDEX idx_chat_telemetry_domain_summary_recent
			ON public.chat_telemetry_domain_summary (last_request_at DESC);
	END IF;

	IF to_regclass('public.chat_telemetry_model_summary') IS NULL THEN
		CREATE MATERIALIZED VIEW public.chat_telemetry_model_summary AS
		SELECT t.model,
		       count(*) AS total_uses,
		       count(DISTINCT t.domain) AS unique_domains,
		       count(*) FILTER (WHERE t.success) AS successful_requests,
		       round(100.0 * count(*) FILTER (WHERE t.success) / count(*), 2) AS success_rate_pct,
		       coalesce(sum(t.cost_usd::numeric), 0) AS total_cost,
		       round(avg(t.cost_usd::numeric), 6) AS avg_cost_per_request,
		       round(1000 * sum(t.cost_usd::numeric)
		             / nullif(sum(t.input_tokens::bigint + t.output_tokens::bigint)
		                          FILTER (WHERE t.cost_usd IS NOT NULL), 0), 6)
		           AS cost_per_1k_tokens,
		       round(avg(t.duration_ms::numeric), 1) AS avg_duration_ms,
		       round(cast(percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration_ms::float8)
		                  AS numeric), 1) AS p95_duration_ms,
		       round(avg(t.input_tokens::bigint + t.output_tokens::bigint), 1)
		           AS avg_tokens_per_request,
		       round(avg(t.input_tokens::integer), 1) AS avg_input_tokens,
		       round(avg(t.output_tokens::integer), 1) AS avg_output_tokens,
		       sum(t.input_tokens::bigint + t.output_tokens::bigint) AS total_tokens,
		       round(avg(t.search_count::integer), 2) AS avg_searches_per_request,
		       round(avg(t.iteration_count::integer), 2) AS avg_iterations_per_request,
		       min(t.created_at) AS first_used_at,
		       max(t.created_at) AS last_used_at,
		       count(*) FILTER (WHERE t.created_at >= now() - interval '24 hours') AS uses_last_24h,
		       count(*) FILTER (WHERE t.created_at >= now() - interval '7 days') AS uses_last_7d,
		       now() AS materialized_at
		FROM public.chat_telemetry t
		GROUP BY t.model
		WITH NO DATA;

		COMMENT ON MATERIALIZED VIEW public.chat_telemetry_model_summary IS
			'Per model: uses, domains, success, cost efficiency, latency, tokens and recent use; '
			'kept by pgcrond plugin chat_telemetry';
		COMMENT ON COLUMN public.chat_telemetry_model_summary.cost_per_1k_tokens IS
			'USD per 1,000 tokens over the requests whose cost is known; NULL if they have no '
			'tokens';
		COMMENT ON COLUMN public.chat_telemetry_model_summary.materialized_at IS
			'now() of the refresh that computed this row';
	END IF;

	IF to_regclass('public.idx_chat_telemetry_model_summary_model') IS NULL THEN
		CREATE UNIQUE INDEX idx_chat_telemetry_model_summary_model
			ON public.chat_telemetry_model_summary (model);
	END IF;
	IF to_regclass('public.idx_chat_telemetry_model_summary_cost') IS NULL THEN
		CREATE INDEX idx_chat_telemetry_model_summary_cost
			ON public.chat_telemetry_model_summary (total_cost DESC);
	END IF;
	IF to_regclass('public.idx_chat_telemetry_model_summary_performance') IS NULL THEN
		CREATE INDEX idx_chat_telemetry_model_summary_performance
			ON public.chat_telemetry_model_summary (avg_duration_ms);
	END IF;
END
$install$;
