INSERT INTO ticks VALUES (statement_timestamp());
