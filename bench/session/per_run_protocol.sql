SELECT pg_catalog.set_config('statement_timeout', '0', false), pg_catalog.set_config('application_name', 'j123', false);
INSERT INTO ticks VALUES (statement_timestamp());
SET statement_timeout = 0;
DISCARD ALL;
SHOW statement_timeout;
