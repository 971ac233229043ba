-- pgcrond demo: a sample-data generator for the tables of schema.sql.
--
--   SELECT * FROM pgcrond_demo.generate(100000);                 -- 100k submissions
--   SELECT * FROM pgcrond_demo.generate(1000000, weeks => 26, seed => 7);
--   SELECT pgcrond_demo.score_pending(50);                       -- fires submission_scored
--
-- generate() replaces the contents of the demo tables (TRUNCATE, then set-based INSERTs
-- over generate_series) with data that looks like a live platform: agents of varying skill
-- who improve over time and have lanes they are persistently weak or strong in, challenges
-- of varying difficulty scored on three to five lanes, bouts between pairs of submissions,
-- a tail of pending and failed submissions, and the messy rows the views must survive (SQL
-- NULL and JSON null final_lane_scores, non-numeric lane values, NULL composite scores).
-- It is deterministic: the same arguments (with the same `until`) give the same rows, so a
-- test can rely on them. Randomness comes from hashing (row number, stream, seed).
--
-- Requires schema.sql. Idempotent to load; raises no NOTICE.

SET client_min_messages = warning;

CREATE SCHEMA IF NOT EXISTS pgcrond_demo;

-- A uniform pseudo-random number in [0, 1) for row I of stream K under SEED. IMMUTABLE SQL
-- so the planner inlines it: no function call per row.
CREATE OR REPLACE FUNCTION pgcrond_demo.u(seed integer, i bigint, k integer)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT (hashint8extended(i * 64 + k, seed) & 2147483647)::double precision / 2147483648.0 $$;

-- A deterministic uuid for entity I of kind KIND ('a' agent, 'c' challenge) under SEED.
CREATE OR REPLACE FUNCTION pgcrond_demo.uuid_of(seed integer, kind text, i bigint)
RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT md5(seed::text || ':' || kind || ':' || i::text)::uuid $$;

-- Lane LANE's score in tenths of a point (0..1000) for an agent with BASE score (its skill,
-- learning so far and the challenge's difficulty folded in) and its affinity for the lane
-- (-1..1, mostly near 0: cubed), plus noise: the sum of three 16-bit uniforms taken from the
-- 64-bit hash H, so roughly bell-shaped. AGENT_KEY and SEED pick the affinity.
CREATE OR REPLACE FUNCTION pgcrond_demo.lane_tenths(base double precision, lane text,
	agent_key bigint, seed integer, h bigint)
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT round(10 * least(100, greatest(0, base
	+ 15 * power(2 * ((hashtextextended(lane, agent_key * 1000 + seed) & 2147483647)::float8
	                  / 2147483648.0) - 1, 3)
	+ 9 * (((h & 65535) + ((h >> 16) & 65535) + ((h >> 32) & 65535))::float8 / 65536.0
	       - 1.5))))::integer $$;

-- A lane's value as JSON text: mostly the score, rarely a JSON null or a string, as buggy
-- judges and half-migrated rows leave them. The glitch draw is the top 16 bits of H.
CREATE OR REPLACE FUNCTION pgcrond_demo.lane_text(tenths integer, h bigint)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN ((h >> 48) & 65535) < 262 THEN 'null'
               WHEN ((h >> 48) & 65535) < 524 THEN '"n/a"'
               ELSE (tenths / 10.0::float8)::text END $$;

-- Whether lane_text() stored the score as a number.
CREATE OR REPLACE FUNCTION pgcrond_demo.lane_ok(h bigint)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT ((h >> 48) & 65535) >= 524 $$;

CREATE OR REPLACE FUNCTION pgcrond_demo.generate(
	submissions integer,               -- how many submissions (two per bout)
	agents integer DEFAULT NULL,       -- default: submissions / 200, within 10 .. 20000
	challenges integer DEFAULT NULL,   -- default: 24 (fewer for tiny data sets)
	weeks integer DEFAULT 12,          -- history length, ending at `until`
	telemetry integer DEFAULT NULL,    -- chat_telemetry rows; default: submissions / 5, >= 1000
	domains integer DEFAULT 40,        -- distinct chat_telemetry domains
	judge_days integer DEFAULT 7,      -- judge_outputs kept for the submissions of the last
	                                   -- N days (older ones purged, as a retention job would)
	seed integer DEFAULT 1,            -- another seed gives other, equally plausible data
	until timestamptz DEFAULT now())   -- the end of the history ("now" of the data)
RETURNS TABLE (relation text, row_count bigint)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
	n_sub integer := submissions;
	n_ag integer := coalesce(agents, least(20000, greatest(10, submissions / 200)));
	n_ch integer := coalesce(challenges, least(24, greatest(3, submissions / 50)));
	n_tel integer := coalesce(telemetry, greatest(1000, submissions / 5));
	n_dom integer := domains;
	span interval := make_interval(weeks => weeks);
	t_end timestamptz := until;
	sd integer := seed;
	demo_tables regclass[] := ARRAY['public.agents', 'public.challenges', 'public.bouts',
		'public.submissions', 'public.bout_results', 'public.judge_outputs',
		'public.chat_telemetry']::regclass[];
	ddl record;
BEGIN
	IF n_sub IS NULL OR n_sub < 2 THEN
		RAISE EXCEPTION 'pgcrond_demo.generate: submissions must be at least 2, not %', n_sub;
	END IF;
	IF n_ag < 2 OR n_ch < 1 OR weeks < 1 OR n_tel < 0 OR n_dom < 1 THEN
		RAISE EXCEPTION 'pgcrond_demo.generate: need agents >= 2, challenges >= 1, weeks >= 1, '
			'telemetry >= 0, domains >= 1';
	END IF;

	-- One summary notification at the end instead of one per inserted scored row.
	PERFORM set_config('pgcrond_demo.bulk_load', 'on', true);

	TRUNCATE public.judge_outputs, public.bout_results, public.submissions, public.bouts,
		public.challenges, public.agents, public.chat_telemetry RESTART IDENTITY;

	-- Load the way pg_restore does: drop the foreign keys and the plain indexes of these
	-- tables, load, then rebuild each in one pass (far cheaper than maintaining them row by
	-- row). Their definitions are read from the catalog, so schema.sql stays the one place
	-- they are written; an error anywhere rolls all of it back.
	CREATE TEMP TABLE IF NOT EXISTS pgcrond_demo_ddl (tbl text, name text, is_fk boolean,
		def text) ON COMMIT DROP;
	TRUNCATE pgcrond_demo_ddl;
	INSERT INTO pgcrond_demo_ddl
	SELECT c.conrelid::regclass::text, c.conname, true, pg_get_constraintdef(c.oid)
	FROM pg_constraint c
	WHERE c.contype = 'f' AND c.conrelid = ANY (demo_tables)
	UNION ALL
	SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, false,
	       pg_get_indexdef(i.indexrelid)
	FROM pg_index i
	WHERE i.indrelid = ANY (demo_tables) AND NOT i.indisunique
	  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
	FOR ddl IN SELECT * FROM pgcrond_demo_ddl LOOP
		IF ddl.is_fk THEN
			EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', ddl.tbl, ddl.name);
		ELSE
			EXECUTE format('DROP INDEX %s', ddl.name);
		END IF;
	END LOOP;

	INSERT INTO public.agents (id, name, created_at)
	SELECT pgcrond_demo.uuid_of(sd, 'a', a),
	       (ARRAY['swift','quiet','brave','lucid','eager','stoic','nimble','sly',
	              'calm','bold','keen','wry','deft','grim','merry','vivid'])[1 + a % 16]
	       || '-' ||
	       (ARRAY['otter','heron','lynx','badger','falcon','gecko','marten','ibis',
	              'yak','wren','koi','moth','newt','orca','puma','tern'])[1 + (a / 16) % 16]
	       || '-' || a,
	       t_end - span - make_interval(days => 1 + (pgcrond_demo.u(sd, a, 1) * 60)::int)
	FROM generate_series(1, n_ag) a;

	INSERT INTO public.challenges (id, slug, lanes, difficulty, created_at)
	SELECT pgcrond_demo.uuid_of(sd, 'c', c),
	       format('challenge-%s', lpad(c::text, 3, '0')),
	       (SELECT array_agg((ARRAY['correctness','efficiency','robustness','readability',
	                                'security','test_coverage','documentation','api_design'])
	                         [1 + (o + j) % 8] ORDER BY j)
	          FROM generate_series(0, 2 + (pgcrond_demo.u(sd, c, 2) * 3)::int % 3) j),
	       round(pgcrond_demo.u(sd, c, 3)::numeric, 2),
	       t_end - span - interval '90 days'
	FROM generate_series(1, n_ch) c,
	     LATERAL (SELECT (pgcrond_demo.u(sd, c, 1) * 8)::int AS o) off;

	-- Bouts: bout b pairs submissions 2b-1 and 2b of two different agents on one challenge.
	-- Popular challenges and busy agents get more (powers of uniforms skew the choice), and
	-- activity grows towards the end of the history. 8% of pairs were never matched: their
	-- submissions have no bout.
	CREATE TEMP TABLE IF NOT EXISTS pgcrond_demo_bx (
		b integer, c integer, ch_id uuid, a1 integer, a2 integer, t timestamptz,
		matched boolean) ON COMMIT DROP;
	TRUNCATE pgcrond_demo_bx;
	INSERT INTO pgcrond_demo_bx
	SELECT b, c, pgcrond_demo.uuid_of(sd, 'c', c), a1,
	       1 + (a1 + floor((n_ag - 1) * pgcrond_demo.u(sd, b, 12))::int) % n_ag,
	       t_end - span * power(pgcrond_demo.u(sd, b, 13), 1.4),
	       pgcrond_demo.u(sd, b, 14) >= 0.08
	FROM generate_series(1, (n_sub + 1) / 2) b,
	     LATERAL (SELECT 1 + floor(n_ch * power(pgcrond_demo.u(sd, b, 10), 1.3))::int AS c,
	                     1 + floor(n_ag * power(pgcrond_demo.u(sd, b, 11), 1.6))::int AS a1) x;

	INSERT INTO public.bouts (id, challenge_id, started_at)
	SELECT b, ch_id, t FROM pgcrond_demo_bx WHERE matched;

	-- Agent number -> id, skill (0..1) and learning rate (points gained over the whole
	-- history; a few agents get worse), joined rather than recomputed per submission.
	CREATE TEMP TABLE IF NOT EXISTS pgcrond_demo_ag (a integer PRIMARY KEY, id uuid,
		skill double precision, rate double precision) ON COMMIT DROP;
	TRUNCATE pgcrond_demo_ag;
	INSERT INTO pgcrond_demo_ag
	SELECT a, pgcrond_demo.uuid_of(sd, 'a', a), pgcrond_demo.u(sd, a, 2),
	       25 * pgcrond_demo.u(sd, a, 3) - 3
	FROM generate_series(1, n_ag) a;
	ANALYZE pgcrond_demo_bx, pgcrond_demo_ag;

	-- Submissions: side 1 and 2 of each bout. A lane score is 30 + 45 skill - 20 difficulty
	-- + learning so far + 15 affinity + noise; the agents' per-lane affinities are the
	-- persistent weaknesses and strengths mv_weakness_patterns finds. Submissions of the last
	-- two days may still be pending or judging; older ones are scored, failed or cancelled.
	-- A few scored rows are broken the ways real ones are (see schema.sql). The nesting
	-- computes each level once (OFFSET 0 keeps the planner from folding them together).
	PERFORM set_config('work_mem', '64MB', true);
	INSERT INTO public.submissions (id, agent_id, challenge_id, bout_id, status,
		final_lane_scores, composite_score, created_at, scored_at)
	SELECT i, agent_id, ch_id, CASE WHEN matched THEN b END, st,
	       CASE WHEN (st = 'scored' AND q >= 0.022) OR (st = 'failed' AND q < 0.3) THEN
	                ('{"' || ln[1] || '":' || pgcrond_demo.lane_text(t1, h1)
	                 || ',"' || ln[2] || '":' || pgcrond_demo.lane_text(t2, h2)
	                 || ',"' || ln[3] || '":' || pgcrond_demo.lane_text(t3, h3)
	                 || coalesce(',"' || ln[4] || '":' || pgcrond_demo.lane_text(t4, h4), '')
	                 || coalesce(',"' || ln[5] || '":' || pgcrond_demo.lane_text(t5, h5), '')
	                 || '}')::jsonb
	            WHEN st = 'scored' AND q < 0.015 THEN NULL           -- scoring record lost
	            WHEN st = 'scored' AND q < 0.020 THEN 'null'::jsonb  -- JSON null, not SQL NULL
	            WHEN st = 'scored' THEN '[]'::jsonb                  -- an array, not an object
	       END,
	       -- composite: the mean of the numeric lanes (equal weights in the demo); missing
	       -- for 3% of scored rows, as when the scoring service times out on them
	       CASE WHEN st = 'scored' AND q >= 0.022 AND q < 0.97 THEN
	            round((CASE WHEN o1 THEN t1 ELSE 0 END + CASE WHEN o2 THEN t2 ELSE 0 END
	                   + CASE WHEN o3 THEN t3 ELSE 0 END + CASE WHEN o4 THEN t4 ELSE 0 END
	                   + CASE WHEN o5 THEN t5 ELSE 0 END)::numeric
	                  / nullif(10 * (o1::int + o2::int + o3::int + o4::int + o5::int), 0), 3)
	       END,
	       created,
	       CASE WHEN st = 'scored' THEN created + make_interval(secs => 5 + 600 * q) END
	FROM (
		SELECT x.*,
		       pgcrond_demo.lane_ok(h1) AS o1, pgcrond_demo.lane_ok(h2) AS o2,
		       pgcrond_demo.lane_ok(h3) AS o3,
		       coalesce(k >= 4 AND pgcrond_demo.lane_ok(h4), false) AS o4,
		       coalesce(k >= 5 AND pgcrond_demo.lane_ok(h5), false) AS o5,
		       pgcrond_demo.lane_tenths(base, ln[1], a, sd, h1) AS t1,
		       pgcrond_demo.lane_tenths(base, ln[2], a, sd, h2) AS t2,
		       pgcrond_demo.lane_tenths(base, ln[3], a, sd, h3) AS t3,
		       pgcrond_demo.lane_tenths(base, ln[4], a, sd, h4) AS t4,
		       pgcrond_demo.lane_tenths(base, ln[5], a, sd, h5) AS t5
		FROM (
			SELECT v.*,
			       30 + 45 * skill - 20 * diff + rate * prog AS base,
			       CASE WHEN created > t_end - interval '2 days' AND q2 < 0.35
			                 THEN CASE WHEN q2 < 0.2 THEN 'pending' ELSE 'judging' END
			            WHEN q2 < 0.03 THEN 'failed'
			            WHEN q2 < 0.04 THEN 'cancelled'
			            ELSE 'scored' END AS st,
			       -- one 64-bit hash per lane: three noise draws and the glitch draw
			       hashint8extended(i * 8 + 1, sd + 4294967296) AS h1,
			       hashint8extended(i * 8 + 2, sd + 4294967296) AS h2,
			       hashint8extended(i * 8 + 3, sd + 4294967296) AS h3,
			       hashint8extended(i * 8 + 4, sd + 4294967296) AS h4,
			       hashint8extended(i * 8 + 5, sd + 4294967296) AS h5
			FROM (
				SELECT bx.b, bx.matched, s.i, s.a, ag.id AS agent_id, ag.skill, ag.rate,
				       bx.t - make_interval(secs => 1800 * pgcrond_demo.u(sd, s.i, 20)) AS created,
				       pgcrond_demo.u(sd, s.i, 18) AS q,
				       pgcrond_demo.u(sd, s.i, 19) AS q2,
				       1 - extract(epoch FROM t_end - bx.t)::float8
				           / extract(epoch FROM span)::float8 AS prog,
				       bx.ch_id, ch.lanes AS ln, cardinality(ch.lanes) AS k,
				       ch.difficulty::float8 AS diff
				FROM pgcrond_demo_bx bx
				CROSS JOIN LATERAL (VALUES (1, 2 * bx.b - 1, bx.a1), (2, 2 * bx.b, bx.a2))
				     s(side, i, a)
				JOIN public.challenges ch ON ch.id = bx.ch_id
				JOIN pgcrond_demo_ag ag ON ag.a = s.a
				WHERE s.i <= n_sub
			) v OFFSET 0
		) x OFFSET 0
	) y;
	PERFORM setval(pg_get_serial_sequence('public.submissions', 'id'), n_sub);

	-- Results of the bouts whose two submissions are settled: the higher composite wins,
	-- equal composites draw (winner NULL), a scored submission beats one that is not.
	INSERT INTO public.bout_results (bout_id, winner_agent_id, decided_at)
	SELECT s1.bout_id,
	       CASE WHEN s1.composite_score IS NOT NULL AND s2.composite_score IS NOT NULL THEN
	                 CASE WHEN s1.composite_score > s2.composite_score THEN s1.agent_id
	                      WHEN s2.composite_score > s1.composite_score THEN s2.agent_id END
	            WHEN s1.composite_score IS NOT NULL THEN s1.agent_id
	            WHEN s2.composite_score IS NOT NULL THEN s2.agent_id END,
	       greatest(s1.scored_at, s2.scored_at, s1.created_at, s2.created_at)
	         + interval '1 minute'
	FROM public.submissions s1
	JOIN public.submissions s2 ON s2.id = s1.id + 1 AND s2.bout_id = s1.bout_id
	WHERE s1.id % 2 = 1
	  AND s1.status NOT IN ('pending', 'judging') AND s2.status NOT IN ('pending', 'judging');

	-- One judge row per lane of the recent submissions that have lane scores.
	IF judge_days > 0 THEN
		INSERT INTO public.judge_outputs (submission_id, lane_key, judge_model, score,
			rationale, created_at)
		SELECT s.id, e.key,
		       (ARRAY['judge-large-v2', 'judge-small-v3', 'judge-code-v1'])[1 + s.id % 3],
		       CASE WHEN jsonb_typeof(e.value) = 'number' THEN e.value::numeric END,
		       CASE WHEN jsonb_typeof(e.value) <> 'number' THEN 'judge returned no score'
		            WHEN e.value::numeric >= 80 THEN 'meets the lane''s criteria well'
		            WHEN e.value::numeric >= 50 THEN 'partly meets the lane''s criteria'
		            ELSE 'falls short on this lane' END,
		       coalesce(s.scored_at, s.created_at + interval '5 minutes')
		FROM public.submissions s
		CROSS JOIN LATERAL jsonb_each(s.final_lane_scores) e
		WHERE jsonb_typeof(s.final_lane_scores) = 'object'
		  AND s.created_at > t_end - make_interval(days => judge_days);
	END IF;

	-- Chat telemetry: busy domains (skewed choice), models released along the history
	-- (a request before a model's release uses the first one), per-model price and latency.
	INSERT INTO public.chat_telemetry (created_at, domain, model, success, error_message,
		input_tokens, output_tokens, cost_usd, duration_ms, search_count, iteration_count)
	SELECT t, format('shop-%s.example.com', lpad(d::text, 3, '0')), m.name, ok,
	       CASE WHEN NOT ok THEN (ARRAY['upstream timeout', 'rate limited by provider',
	                                    'context length exceeded', 'tool call failed'])
	                                   [1 + (r * 4)::int % 4] END,
	       tin, tout,
	       CASE WHEN r2 >= 0.005 THEN round((tin * m.price_in + tout * m.price_out) / 1e6, 6) END,
	       (m.base_ms + tout * m.ms_per_token + srch * 350 + 900 * r)::int,
	       srch, iters
	FROM (
		SELECT g, t, d, r, r2, srch, iters, ok,
		       CASE WHEN (t - (t_end - span)) < span * mrel.released THEN 1 ELSE mi END AS mi,
		       (400 + 5000 * power(pgcrond_demo.u(sd, g, 56), 2))::int AS tin,
		       CASE WHEN ok THEN (40 + 1200 * power(pgcrond_demo.u(sd, g, 57), 2))::int
		            ELSE (20 * pgcrond_demo.u(sd, g, 57))::int END AS tout
		FROM (
			SELECT g,
			       t_end - span * power(pgcrond_demo.u(sd, g, 50), 1.2) AS t,
			       1 + floor(n_dom * power(pgcrond_demo.u(sd, g, 51), 2))::int AS d,
			       1 + floor(6 * power(pgcrond_demo.u(sd, g, 52), 1.3))::int AS mi,
			       pgcrond_demo.u(sd, g, 53) AS r,
			       pgcrond_demo.u(sd, g, 54) AS r2,
			       floor(4 * power(pgcrond_demo.u(sd, g, 55), 2))::int AS srch,
			       1 + floor(4 * power(pgcrond_demo.u(sd, g, 58), 3))::int AS iters,
			       pgcrond_demo.u(sd, g, 59) >= 0.04 AS ok
			FROM generate_series(1, n_tel) g
		) p
		JOIN (VALUES (1, 0.0), (2, 0.0), (3, 0.2), (4, 0.45), (5, 0.7), (6, 0.9))
		     mrel(mi, released) USING (mi)
	) q
	JOIN (VALUES (1, 'gpt-3.5-turbo', 0.50, 1.50, 300, 0.8),
	             (2, 'gpt-4', 30.0, 60.0, 900, 3.0),
	             (3, 'gpt-4-turbo', 10.0, 30.0, 700, 2.0),
	             (4, 'gpt-4o', 2.50, 10.0, 450, 1.2),
	             (5, 'gpt-4o-mini', 0.15, 0.60, 250, 0.7),
	             (6, 'claude-3-5-sonnet', 3.0, 15.0, 500, 1.4))
	     m(mi, name, price_in, price_out, base_ms, ms_per_token) USING (mi);

	FOR ddl IN SELECT * FROM pgcrond_demo_ddl ORDER BY is_fk LOOP
		IF ddl.is_fk THEN
			EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', ddl.tbl, ddl.name, ddl.def);
		ELSE
			EXECUTE ddl.def;
		END IF;
	END LOOP;

	ANALYZE public.agents, public.challenges, public.bouts, public.submissions,
		public.bout_results, public.judge_outputs, public.chat_telemetry;

	-- The listeners learn about the bulk load once.
	PERFORM pg_notify('submission_scored', json_build_object('bulk_load', true,
		'submissions', n_sub)::text);

	FOR relation, row_count IN
		SELECT 'agents', count(*) FROM public.agents
		UNION ALL SELECT 'challenges', count(*) FROM public.challenges
		UNION ALL SELECT 'bouts', count(*) FROM public.bouts
		UNION ALL SELECT 'submissions', count(*) FROM public.submissions
		UNION ALL SELECT 'bout_results', count(*) FROM public.bout_results
		UNION ALL SELECT 'judge_outputs', count(*) FROM public.judge_outputs
		UNION ALL SELECT 'chat_telemetry', count(*) FROM public.chat_telemetry
	LOOP
		RETURN NEXT;
	END LOOP;
END;
$fn$;

-- Move up to N pending or judging submissions (oldest first) to 'scored', with scores,
-- as the judges would: each fires the submission_scored notification when its transaction
-- commits. For showing pgcrond's listen/debounce at work. Returns how many were scored.
CREATE OR REPLACE FUNCTION pgcrond_demo.score_pending(n integer DEFAULT 10)
RETURNS integer LANGUAGE sql AS $fn$
	WITH picked AS (
		SELECT s.id, c.lanes
		FROM public.submissions s JOIN public.challenges c ON c.id = s.challenge_id
		WHERE s.status IN ('pending', 'judging')
		ORDER BY s.created_at, s.id
		LIMIT n
		FOR UPDATE OF s SKIP LOCKED
	), scored AS (
		SELECT p.id, jsonb_object_agg(l, round((40 + 50 * random())::numeric, 1)) AS lanes
		FROM picked p CROSS JOIN LATERAL unnest(p.lanes) l
		GROUP BY p.id
	), upd AS (
		UPDATE public.submissions s
		SET status = 'scored', final_lane_scores = sc.lanes,
		    composite_score = (SELECT round(avg(v::numeric), 3)
		                       FROM jsonb_each_text(sc.lanes) e(k, v)),
		    scored_at = now()
		FROM scored sc WHERE s.id = sc.id
		RETURNING 1
	)
	SELECT count(*)::integer FROM upd
$fn$;

RESET client_min_messages;
