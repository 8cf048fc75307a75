-- expect: primary write-statement
CREATE TABLE new_table (id int PRIMARY KEY, payload jsonb)
-- expect: primary write-statement
CREATE TABLE IF NOT EXISTS orders (id int)
-- expect: primary write-statement
CREATE UNLOGGED TABLE scratch (v text)
-- expect: primary write-statement
CREATE TEMPORARY TABLE tmp_t (v text) ON COMMIT DROP
-- expect: primary write-statement
CREATE INDEX orders_status_idx ON orders (status) WHERE status <> 'done'
-- expect: primary write-statement
CREATE INDEX CONCURRENTLY orders_total_idx ON orders (total)
-- expect: primary write-statement
CREATE UNIQUE INDEX customers_email_idx ON customers (lower(email))
-- expect: primary write-statement
CREATE VIEW open_orders AS SELECT * FROM orders WHERE status = 'new'
-- expect: primary write-statement
CREATE OR REPLACE VIEW v_orders AS SELECT o.id, o.status, c.name FROM orders AS o JOIN customers AS c ON c.id = o.customer_id
-- expect: primary write-statement
CREATE SEQUENCE invoice_seq START 1000
-- expect: primary write-statement
CREATE SCHEMA reporting
-- expect: primary write-statement
CREATE TYPE money_pair AS (amount numeric, currency text)
-- expect: primary write-statement
CREATE DOMAIN positive_int AS int CHECK (VALUE > 0)
-- expect: primary write-statement
CREATE FUNCTION add_one(i int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT i + 1 $$
-- expect: primary write-statement
-- oracle-error: 42601
CREATE OR REPLACE FUNCTION f_atomic(i int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT i; SELECT i + 1; END
-- expect: primary write-statement
CREATE PROCEDURE p_noop() LANGUAGE plpgsql AS $body$ BEGIN RAISE NOTICE 'for update'; END $body$
-- expect: primary write-statement
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()
-- expect: primary write-statement
CREATE RULE no_delete AS ON DELETE TO audit_log DO INSTEAD NOTHING
-- expect: primary write-statement
CREATE POLICY own_orders ON orders FOR SELECT USING (customer_id = 1)
-- expect: primary write-statement
CREATE EXTENSION IF NOT EXISTS pg_trgm
-- expect: primary write-statement
CREATE ROLE app_reader NOLOGIN
-- expect: primary write-statement
CREATE DATABASE corpus_scratch
-- expect: primary write-statement
CREATE STATISTICS orders_stats (dependencies) ON customer_id, status FROM orders
-- expect: primary write-statement
CREATE TABLE orders_part (id int, at date) PARTITION BY RANGE (at)
-- expect: primary write-statement
CREATE PUBLICATION corpus_pub FOR TABLE orders
-- expect: primary write-statement
CREATE COLLATION corpus_coll (provider = icu, locale = 'und')
-- expect: primary write-statement
CREATE AGGREGATE corpus_sum (int) (sfunc = int4pl, stype = int)
-- expect: primary write-statement
CREATE CAST (order_status AS text) WITH INOUT
-- expect: primary write-statement
ALTER TABLE orders ADD COLUMN discount numeric
-- expect: primary write-statement
alter table orders alter column note set default 'none'
-- expect: primary write-statement
ALTER TABLE orders RENAME COLUMN note TO remark
-- expect: primary write-statement
ALTER INDEX orders_tags RENAME TO orders_tags_gin
-- expect: primary write-statement
ALTER SEQUENCE order_seq RESTART WITH 5
-- expect: primary write-statement
ALTER TYPE order_status ADD VALUE 'void'
-- expect: primary write-statement
ALTER ROLE corpus_reader SET work_mem = '8MB'
-- expect: primary write-statement
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO corpus_reader
-- expect: primary write-statement
ALTER SYSTEM SET work_mem = '8MB'
-- expect: primary write-statement
ALTER MATERIALIZED VIEW order_totals RENAME TO order_totals2
-- expect: primary write-statement
DROP TABLE order_items
-- expect: primary write-statement
DROP TABLE IF EXISTS no_such_table
-- expect: primary write-statement
DROP VIEW v_orders CASCADE
-- expect: primary write-statement
DROP INDEX CONCURRENTLY IF EXISTS orders_tags
-- expect: primary write-statement
DROP FUNCTION touch_order(int)
-- expect: primary write-statement
DROP SEQUENCE order_seq
-- expect: primary write-statement
DROP SCHEMA audit CASCADE
-- expect: primary write-statement
DROP OWNED BY corpus_reader
-- expect: primary write-statement
GRANT SELECT ON orders TO corpus_reader
-- expect: primary write-statement
GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO corpus_reader
-- expect: primary write-statement
REVOKE UPDATE, DELETE ON orders FROM corpus_reader
-- expect: primary write-statement
REVOKE corpus_reader FROM CURRENT_USER
-- expect: primary write-statement
COMMENT ON TABLE orders IS 'SELECT only, please'
-- expect: primary write-statement
COMMENT ON COLUMN orders.note IS NULL
-- expect: primary write-statement
SECURITY LABEL ON TABLE orders IS 'classified'
-- expect: primary write-statement
REASSIGN OWNED BY corpus_reader TO CURRENT_USER
-- expect: primary write-statement
IMPORT FOREIGN SCHEMA remote FROM SERVER no_server INTO local_schema
-- expect: primary write-statement
VACUUM
-- expect: primary write-statement
VACUUM (VERBOSE, ANALYZE) orders
-- expect: primary write-statement
vacuum full audit_log
-- expect: primary write-statement
ANALYZE
-- expect: primary write-statement
ANALYZE orders (status, total)
-- expect: primary write-statement
ANALYSE VERBOSE customers
-- expect: primary write-statement
REINDEX TABLE orders
-- expect: primary write-statement
REINDEX (VERBOSE) INDEX orders_pkey
-- expect: primary write-statement
CLUSTER orders USING orders_pkey
-- expect: primary write-statement
REFRESH MATERIALIZED VIEW order_totals
-- expect: primary write-statement
REFRESH MATERIALIZED VIEW CONCURRENTLY order_totals
-- expect: primary write-statement
CHECKPOINT
