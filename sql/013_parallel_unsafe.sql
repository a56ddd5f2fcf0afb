-- smartpay.shop_time catches the error of a cast (an exception block, that is a
-- subtransaction), which PostgreSQL refuses in a parallel plan: "cannot start
-- subtransactions during a parallel operation". Both it and the text form of
-- smartpay.order_deadline that calls it are therefore parallel unsafe, so that a
-- statement over a large orders relation is never planned in parallel around them.
ALTER FUNCTION smartpay.shop_time(text) PARALLEL UNSAFE;
ALTER FUNCTION smartpay.order_deadline(text, text, interval) PARALLEL UNSAFE;
