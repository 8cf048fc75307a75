-- expect: primary write-function
SELECT nextval('order_seq')
-- expect: primary write-function
select NEXTVAL('order_seq'::regclass)
-- expect: primary write-function
SELECT pg_catalog.nextval('order_seq')
-- expect: primary write-function
SELECT "nextval"('order_seq')
-- expect: primary write-function
SELECT pg_catalog."nextval"('order_seq')
-- expect: primary write-function
SELECT nextval ('order_seq')
-- expect: primary write-function
SELECT nextval/* comment */('order_seq')
-- expect: primary write-function
SELECT nextval -- comment
('order_seq')
-- expect: primary write-function
SELECT setval('order_seq', 100)
-- expect: primary write-function
SELECT setval('order_seq', 100, false)
-- expect: primary write-function
SELECT nextval('order_seq'), currval('order_seq')
-- expect: primary write-function
-- oracle-error: 55000
SELECT currval('order_seq')
-- expect: primary write-function
-- oracle-error: 55000
SELECT lastval()
-- expect: primary write-function
SELECT id, nextval('order_seq') FROM orders WHERE status = 'new'
-- expect: primary write-function
SELECT * FROM orders WHERE id = (SELECT nextval('order_seq'))
-- expect: primary write-function
WITH s AS (SELECT nextval('order_seq') AS v) SELECT v FROM s
-- expect: primary write-function
VALUES (nextval('order_seq'))
-- expect: primary write-function
SELECT * FROM nextval('order_seq')
-- expect: primary write-function
SELECT pg_advisory_lock(42)
-- expect: primary write-function
SELECT pg_advisory_xact_lock(42)
-- expect: primary write-function
SELECT pg_try_advisory_lock(1, 2)
-- expect: primary write-function
SELECT pg_try_advisory_xact_lock_shared(7)
-- expect: primary write-function
SELECT pg_advisory_unlock_all()
-- expect: primary write-function
SELECT pg_advisory_lock_shared(hashtext('job'))
-- expect: primary write-function
SELECT id FROM orders WHERE pg_try_advisory_xact_lock(id) LIMIT 1
-- expect: primary write-function
SELECT pg_notify('order_events', 'paid')
-- expect: primary write-function
SELECT set_config('app.user_id', '42', false)
-- expect: primary write-function
SELECT pg_catalog.set_config('search_path', 'public', true)
-- expect: primary write-function
SELECT setseed(0.5)
-- expect: primary write-function
SELECT txid_current()
-- expect: primary write-function
SELECT txid_current_if_assigned()
-- expect: primary write-function
SELECT pg_current_xact_id()
-- expect: primary write-function
SELECT pg_current_xact_id_if_assigned()
-- expect: primary write-function
SELECT pg_current_wal_lsn()
-- expect: primary write-function
SELECT pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn()
-- expect: primary write-function
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')
-- expect: primary write-function
SELECT pg_walfile_name(pg_current_wal_lsn())
-- expect: primary write-function
SELECT pg_switch_wal()
-- expect: primary write-function
SELECT pg_create_restore_point('corpus')
-- expect: primary write-function
SELECT pg_backup_start('corpus', true)
-- expect: primary write-function
SELECT pg_logical_emit_message(true, 'corpus', 'payload')
-- expect: primary write-function
SELECT pg_export_snapshot()
-- expect: primary write-function
SELECT * FROM pg_create_physical_replication_slot('corpus_slot', false, true)
-- expect: primary write-function
-- oracle-error: 55000
SELECT * FROM pg_create_logical_replication_slot('corpus_logical', 'test_decoding', true)
-- expect: primary write-function
-- oracle-error: 42704
SELECT pg_drop_replication_slot('no_such_slot')
-- expect: primary write-function
SELECT lo_create(0)
-- expect: primary write-function
SELECT lo_from_bytea(0, '\x00'::bytea)
-- expect: primary write-function
SELECT lo_unlink(424242)
-- expect: primary write-function
SELECT lo_put(424242, 0, '\x01'::bytea)
-- expect: primary write-function
SELECT lo_open(424242, 131072)
-- expect: primary write-function
SELECT pg_terminate_backend(2147483647)
-- expect: primary write-function
SELECT pg_cancel_backend(2147483647)
-- expect: primary write-function
SELECT pg_reload_conf()
-- expect: primary write-function
SELECT gin_clean_pending_list('orders_tags')
-- expect: primary write-function
SELECT brin_summarize_new_values('orders_pkey')
-- expect: primary write-function
SELECT pg_stat_reset()
-- expect: primary write-function
SELECT query_to_xml('select nextval(''order_seq'')', true, false, '')
-- expect: primary write-function
SELECT touch_order(1)
-- expect: primary write-function
SELECT public.touch_order(id) FROM orders
-- expect: primary write-function
SELECT audit.log_access('read orders')
-- expect: primary write-function
SELECT "audit"."log_access"('quoted')
-- expect: primary write-function
SELECT AUDIT.LOG_ACCESS('upper case')
-- expect: primary write-function
SELECT o.id FROM orders o WHERE audit.log_access(o.status) IS NULL
-- expect: primary write-function
SELECT o.order_touch FROM orders o
-- expect: primary write-function
SELECT order_touch(o) FROM orders o
-- expect: primary write-function
SELECT 1; SELECT nextval('order_seq')
-- expect: primary write-function
EXPLAIN ANALYZE SELECT nextval('order_seq')
-- expect: primary write-function
COPY (SELECT nextval('order_seq')) TO STDOUT
-- expect: primary write-function
SELECT count(*) FROM orders WHERE id > 0 AND pg_catalog.pg_try_advisory_lock(id)
