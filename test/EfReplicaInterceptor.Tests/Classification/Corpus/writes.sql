-- expect: primary write-statement
INSERT INTO customers (id, name) VALUES (10, 'Cid')
-- expect: primary write-statement
insert into customers values (11, 'Dee', null, now())
-- expect: primary write-statement
INSERT INTO orders (customer_id, total) VALUES (1, 5) RETURNING id, created_at
-- expect: primary write-statement
INSERT INTO orders (customer_id) SELECT id FROM customers WHERE email IS NOT NULL
-- expect: primary write-statement
INSERT INTO customers (id, name) VALUES (1, 'Ann') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name
-- expect: primary write-statement
INSERT INTO customers (id, name) VALUES (1, 'Ann') ON CONFLICT DO NOTHING
-- expect: primary write-statement
INSERT INTO audit_log DEFAULT VALUES
-- expect: primary write-statement
INSERT INTO t OVERRIDING USER VALUE VALUES (5, 'x', 0, 0)
-- expect: primary write-statement
UPDATE orders SET status = 'paid' WHERE id = 1
-- expect: primary write-statement
UPDATE orders o SET total = o.total + i.price FROM order_items i WHERE i.order_id = o.id RETURNING o.id
-- expect: primary write-statement
update ONLY orders set note = default where false
-- expect: primary write-statement
UPDATE orders SET (status, note) = (SELECT 'done', 'bulk') WHERE id IN (SELECT order_id FROM order_items)
-- expect: primary write-statement
DELETE FROM order_items WHERE qty = 0
-- expect: primary write-statement
DELETE FROM orders o USING customers c WHERE c.id = o.customer_id AND c.email IS NULL RETURNING o.*
-- expect: primary write-statement
delete from audit_log
-- expect: primary write-statement
MERGE INTO customers AS c USING (VALUES (1, 'Ann2'), (3, 'Eve')) AS s(id, name) ON c.id = s.id WHEN MATCHED THEN UPDATE SET name = s.name WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name)
-- expect: primary write-statement
MERGE INTO order_items i USING orders o ON o.id = i.order_id WHEN MATCHED AND o.status = 'void' THEN DELETE WHEN MATCHED THEN DO NOTHING
-- expect: primary write-statement
WITH moved AS (DELETE FROM order_items WHERE qty = 0 RETURNING *) SELECT count(*) FROM moved
-- expect: primary write-statement
WITH ins AS (INSERT INTO audit_log (message) VALUES ('x') RETURNING id) SELECT id FROM ins
-- expect: primary write-statement
WITH upd AS (UPDATE orders SET note = 'n' RETURNING id) SELECT * FROM upd
-- expect: primary write-statement
WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM a), c AS (UPDATE orders SET note = 'deep' WHERE id = (SELECT x FROM b) RETURNING id) SELECT * FROM c
-- expect: primary write-statement
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) INSERT INTO audit_log (message) SELECT i::text FROM n
-- expect: primary write-statement
WITH src AS (SELECT id, total FROM orders) UPDATE orders o SET total = src.total * 2 FROM src WHERE src.id = o.id
-- expect: primary write-statement
WITH gone AS (DELETE FROM audit_log RETURNING id) DELETE FROM order_items WHERE order_id IN (SELECT id FROM gone)
-- expect: primary write-statement
SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) s, LATERAL (SELECT 1) l WHERE EXISTS (WITH y AS (SELECT 2) SELECT * FROM y); WITH z AS (INSERT INTO audit_log (message) VALUES ('later') RETURNING 1) SELECT * FROM z
-- expect: primary write-statement
SELECT id, status INTO TEMP orders_copy FROM orders
-- expect: primary write-statement
SELECT * INTO UNLOGGED TABLE order_snapshot FROM orders WHERE false
-- expect: primary write-statement
select 1 as one into temporary one_table
-- expect: primary write-statement
WITH x AS (SELECT 1 AS v) SELECT v INTO TABLE from_cte FROM x
-- expect: primary write-statement
CREATE TABLE orders_2024 AS SELECT * FROM orders WHERE created_at >= '2024-01-01'
-- expect: primary write-statement
CREATE TEMP TABLE tmp_ids AS SELECT id FROM orders WITH NO DATA
-- expect: primary write-statement
CREATE MATERIALIZED VIEW customer_names AS SELECT name FROM customers
-- expect: primary write-statement
COPY orders FROM STDIN
-- expect: primary write-statement
COPY order_items (order_id, line, sku) FROM STDIN WITH (FORMAT csv)
-- expect: primary write-statement
COPY t FROM '/dev/null'
-- expect: primary write-statement
COPY orders TO '/tmp/efreplica-corpus-orders.csv'
-- expect: primary write-statement
COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'
-- expect: primary write-statement
COPY (INSERT INTO audit_log (message) VALUES ('copy') RETURNING id) TO STDOUT
-- expect: primary write-statement
COPY (WITH d AS (DELETE FROM audit_log RETURNING id) SELECT * FROM d) TO STDOUT
-- expect: primary write-statement
EXPLAIN ANALYZE INSERT INTO audit_log (message) VALUES ('explained')
-- expect: primary write-statement
EXPLAIN (ANALYZE, BUFFERS) UPDATE orders SET note = 'e'
-- expect: primary write-statement
EXPLAIN (ANALYZE) WITH d AS (DELETE FROM audit_log RETURNING 1) SELECT * FROM d
-- expect: primary write-statement
explain analyse verbose delete from audit_log
-- expect: primary write-statement
EXPLAIN ANALYZE CREATE TABLE explained_copy AS SELECT * FROM orders
-- expect: primary write-statement
EXPLAIN ANALYZE SELECT * INTO explained_into FROM orders
-- expect: primary write-statement
EXPLAIN (ANALYZE) MERGE INTO customers c USING customers s ON c.id = s.id WHEN MATCHED THEN DO NOTHING
-- expect: primary write-statement
EXPLAIN INSERT INTO audit_log (message) VALUES ('not executed')
-- expect: primary write-statement
SELECT 1; INSERT INTO audit_log (message) VALUES ('second')
-- expect: primary write-statement
INSERT INTO audit_log (message) VALUES ('first'); SELECT 1
-- expect: primary write-statement
SELECT 1; SELECT 2; SELECT 3; DELETE FROM audit_log WHERE id < 0; SELECT 4
-- expect: primary write-statement
VALUES (1); UPDATE t SET v = 'z'
-- expect: primary write-statement
TRUNCATE audit_log
-- expect: primary write-statement
truncate table order_items, audit_log restart identity cascade
-- expect: primary write-statement
CALL archive_orders()
-- expect: primary write-statement
DO $$ BEGIN PERFORM 1; END $$
-- expect: primary write-statement
DO LANGUAGE plpgsql 'BEGIN NULL; END'
-- expect: primary write-statement
SELECT * FROM orders WHERE id IN (SELECT 1); UPDATE orders SET note = 'for update' WHERE id = 1
