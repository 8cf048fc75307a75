-- expect: replica read
SELECT 1
-- expect: replica read
select * from orders
-- expect: replica read
SeLeCt id, status FROM orders WHERE status = 'new'
-- expect: replica read
SELECT o.id, o.total FROM orders AS o WHERE o.total > 10 ORDER BY o.total DESC LIMIT 5 OFFSET 0
-- expect: replica read
SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.email IS NOT NULL
-- expect: replica read
SELECT o.id, c.name FROM orders o LEFT JOIN customers c USING (id) RIGHT JOIN order_items i ON i.order_id = o.id
-- expect: replica read
SELECT * FROM orders o FULL OUTER JOIN customers c ON c.id = o.customer_id CROSS JOIN LATERAL (SELECT count(*) FROM order_items i WHERE i.order_id = o.id) AS n(items)
-- expect: replica read
SELECT customer_id, count(*), sum(total), avg(total) FROM orders GROUP BY customer_id HAVING count(*) > 0
-- expect: replica read
SELECT status, count(*) FILTER (WHERE total > 10) AS big FROM orders GROUP BY ROLLUP (status)
-- expect: replica read
SELECT customer_id, status, sum(total) FROM orders GROUP BY GROUPING SETS ((customer_id), (status), ())
-- expect: replica read
SELECT DISTINCT ON (customer_id) customer_id, id, created_at FROM orders ORDER BY customer_id, created_at DESC
-- expect: replica read
SELECT id, total, row_number() OVER (PARTITION BY customer_id ORDER BY total DESC) AS rn FROM orders
-- expect: replica read
SELECT id, sum(total) OVER w, lag(total) OVER w FROM orders WINDOW w AS (ORDER BY created_at ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)
-- expect: replica read
SELECT id, avg(total) OVER (ORDER BY id RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING EXCLUDE CURRENT ROW) FROM orders
-- expect: replica read
SELECT id FROM orders UNION SELECT id FROM customers
-- expect: replica read
SELECT id FROM orders UNION ALL SELECT id FROM customers INTERSECT SELECT order_id FROM order_items EXCEPT SELECT 42
-- expect: replica read
(SELECT id FROM orders ORDER BY id LIMIT 1) UNION ALL (SELECT id FROM customers ORDER BY id DESC LIMIT 1)
-- expect: replica read
((SELECT 1))
-- expect: replica read
SELECT * FROM orders ORDER BY id FETCH FIRST 3 ROWS ONLY
-- expect: replica read
SELECT * FROM orders ORDER BY total FETCH FIRST 1 ROW WITH TIES
-- expect: replica read
SELECT * FROM orders OFFSET 1 ROWS FETCH NEXT 2 ROWS ONLY
-- expect: replica read
SELECT substring(note FOR 3), substring(status FROM 1 FOR 2), overlay(status PLACING 'xx' FROM 1 FOR 2) FROM orders
-- expect: replica read
SELECT substring('for update' FROM 1 FOR 3)
-- expect: replica read
SELECT trim(BOTH 'x' FROM status), position('e' IN status), extract(year FROM created_at) FROM orders
-- expect: replica read
SELECT * FROM unnest(ARRAY['a', 'b']) WITH ORDINALITY AS u(value, ordinal)
-- expect: replica read
SELECT * FROM ROWS FROM (generate_series(1, 3), unnest(ARRAY['x', 'y'])) AS r(n, s)
-- expect: replica read
SELECT * FROM XMLTABLE('/rows/row' PASSING ('<rows><row><a>1</a></row></rows>'::xml) COLUMNS ord FOR ORDINALITY, a int PATH 'a')
-- expect: replica read
SELECT 1 FOR READ ONLY
-- expect: replica read
SELECT id FROM orders WHERE id IN (SELECT order_id FROM order_items WHERE qty > 1) AND EXISTS (SELECT 1 FROM customers c WHERE c.id = orders.customer_id)
-- expect: replica read
SELECT id FROM orders WHERE customer_id = ANY (ARRAY[1, 2, 3]) AND status <> ALL ('{done,void}'::text[])
-- expect: replica read
SELECT * FROM orders WHERE tags @> ARRAY['x'] AND tags && '{y}' AND NOT (tags <@ '{}')
-- expect: replica read
SELECT data -> 'a', data ->> 'b', data #> '{b,c}', data #>> '{b,c}', data ? 'a', data ?| ARRAY['a', 'b'], data @> '{"a": 1}' FROM orders
-- expect: replica read
SELECT jsonb_path_query_array(data, '$.b.c'), data @? '$.a', jsonb_build_object('id', id) FROM orders
-- expect: replica read
SELECT name FROM customers WHERE name ILIKE '%an%' OR name ~* '^b' OR name SIMILAR TO '(A|B)%' OR name NOT LIKE 'x\_%' ESCAPE '\'
-- expect: replica read
SELECT id::text, total::int, CAST(created_at AS date), '2024-01-01'::timestamptz AT TIME ZONE 'UTC', interval '1 day' * 2 FROM orders
-- expect: replica read
SELECT CASE WHEN total > 20 THEN 'big' WHEN total > 10 THEN 'mid' ELSE 'small' END, coalesce(note, 'none'), nullif(status, ''), greatest(1, 2) FROM orders
-- expect: replica read
SELECT now(), current_timestamp, current_date, clock_timestamp(), random(), gen_random_uuid(), pg_backend_pid(), current_user, session_user
-- expect: replica read
SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), pg_last_wal_receive_lsn(), pg_last_xact_replay_timestamp()
-- expect: replica read
SELECT string_agg(name, ', ' ORDER BY name), array_agg(id), json_agg(c) FROM customers c
-- expect: replica read
SELECT count(*) FROM pg_stat_activity
-- expect: replica read
SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE schemaname = 'public'
-- expect: replica read
SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1
-- expect: replica read
SELECT pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size('orders'))
-- expect: replica read
SELECT * FROM v_orders
-- expect: replica read
SELECT * FROM order_totals ORDER BY total DESC
-- expect: replica read
SELECT o.order_total, order_total(o) FROM orders o
-- expect: replica read
SELECT "select", "from" FROM "update"
-- expect: replica read
SELECT update_count, t.for, "for" FROM t WHERE update_count > 0
-- expect: replica read
SELECT id AS "delete", status AS "insert into" FROM orders
-- expect: replica read
SELECT t.update FROM (SELECT 1 AS update) AS t
-- expect: replica read
SELECT id FROM orders AS insert_date WHERE insert_date.id > 0
-- expect: replica read
SELECT 'INSERT INTO orders VALUES (1)' AS sql, 'SELECT ... FOR UPDATE' AS hint, 'nextval(''order_seq'')' AS call
-- expect: replica read
VALUES (1, 'one'), (2, 'two')
-- expect: replica read
VALUES (1) ORDER BY 1 LIMIT 1
-- expect: replica read
TABLE orders
-- expect: replica read
TABLE customers ORDER BY id LIMIT 1
-- expect: replica read
WITH big AS (SELECT * FROM orders WHERE total > 10) SELECT count(*) FROM big
-- expect: replica read
WITH a AS (SELECT 1 AS x), b AS (SELECT x + 1 AS y FROM a) SELECT * FROM a, b
-- expect: replica read
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT sum(i) FROM n
-- expect: replica read
WITH RECURSIVE tree(id, depth) AS (SELECT 1, 0 UNION ALL SELECT id + 1, depth + 1 FROM tree WHERE depth < 3) SEARCH DEPTH FIRST BY id SET ordercol CYCLE id SET is_cycle USING path SELECT * FROM tree
-- expect: replica read
WITH m AS MATERIALIZED (SELECT * FROM orders), n AS NOT MATERIALIZED (SELECT * FROM customers) SELECT * FROM m JOIN n ON n.id = m.customer_id
-- expect: replica read
WITH x AS (WITH y AS (SELECT 1 AS v) SELECT v FROM y) SELECT * FROM x
-- expect: replica read
SELECT * FROM (WITH inner_cte AS (SELECT id FROM orders) SELECT * FROM inner_cte) AS s
-- expect: replica read
SHOW server_version
-- expect: replica read
SHOW ALL
-- expect: replica read
show transaction_read_only
-- expect: replica read
EXPLAIN SELECT * FROM orders WHERE id = 1
-- expect: replica read
EXPLAIN ANALYZE SELECT * FROM orders
-- expect: replica read
EXPLAIN ANALYZE VERBOSE SELECT * FROM orders
-- expect: replica read
EXPLAIN VERBOSE SELECT 1
-- expect: replica read
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT count(*) FROM orders
-- expect: replica read
EXPLAIN (ANALYZE true, COSTS off, TIMING false, SUMMARY on, SETTINGS, WAL) WITH c AS (SELECT 1) SELECT * FROM c
-- expect: replica read
EXPLAIN (FORMAT YAML) VALUES (1)
-- expect: replica read
EXPLAIN (SELECT 1)
-- expect: replica read
COPY orders TO STDOUT
-- expect: replica read
COPY public.orders (id, status) TO STDOUT WITH (FORMAT csv, HEADER true)
-- expect: replica read
COPY (SELECT id, status FROM orders WHERE total > 1) TO STDOUT WITH (FORMAT binary)
-- expect: replica read
copy (with x as (select 1) select * from x) to stdout csv header
-- expect: replica read
COPY "orders" TO STDOUT (DELIMITER '|')
-- expect: replica read
SELECT id FROM orders; SELECT id FROM customers
-- expect: replica read
SELECT 1;
-- expect: replica read
;SELECT 1;;
-- expect: replica read
SELECT 1; VALUES (2); TABLE customers; SHOW work_mem
-- expect: replica read
SELECT lo_get(424242)
-- expect: replica read
SELECT txid_current_snapshot(), pg_current_snapshot(), txid_status(1), pg_sleep(0)
-- expect: replica read
SELECT * FROM orders TABLESAMPLE SYSTEM (50) REPEATABLE (1)
-- expect: replica read
SELECT * FROM ONLY orders WHERE id BETWEEN 1 AND 10 AND status IS DISTINCT FROM 'void'
-- expect: replica read
SELECT ARRAY(SELECT id FROM orders), ROW(1, 'a'), (SELECT max(id) FROM orders)
-- expect: replica read
SELECT (o).id, (o).* FROM (SELECT orders AS o FROM orders) AS s
-- expect: replica read
SELECT tags[1], tags[1:2], tags[:1], array_length(tags, 1) FROM orders
-- expect: replica read
SELECT format('%s-%s', id, status), concat_ws('-', id, status), md5(status), encode(sha256(status::bytea), 'hex') FROM orders
-- expect: replica read
SELECT to_tsvector('english', coalesce(note, '')) @@ plainto_tsquery('english', 'delete') FROM orders
-- expect: replica read
SELECT 1 WHERE 'for' = 'update' OR 'share' <> 'key'
-- expect: replica read
SELECT generate_series(1, 3) AS for_update, 'x' AS key_share
-- expect: replica read
SELECT pg_catalog.current_setting('work_mem'), current_setting('search_path', true)
-- expect: replica read
SELECT has_table_privilege('orders', 'UPDATE'), has_table_privilege('orders', 'DELETE')
-- expect: replica read
SELECT * FROM orders WHERE data @> jsonb_build_object('delete', true) AND note IS NULL
-- expect: replica read
SELECT id FROM orders ORDER BY id DESC NULLS LAST, status COLLATE "C" ASC NULLS FIRST
-- expect: replica read
SELECT EXISTS (SELECT 1 FROM orders WHERE status = 'new') AS any_new
-- expect: replica read
SELECT x.* FROM json_to_recordset('[{"a":1,"b":"x"}]') AS x(a int, b text)
-- expect: replica read
SELECT * FROM jsonb_each_text('{"update":"1","into":"2"}')
