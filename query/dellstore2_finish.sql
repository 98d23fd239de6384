-- Keys, indexes and foreign keys of dellstore2, added once the tables are loaded, then the
-- serial sequences moved past the loaded ids.
ALTER TABLE categories ADD CONSTRAINT categories_pkey PRIMARY KEY (category);
ALTER TABLE customers ADD CONSTRAINT customers_pkey PRIMARY KEY (customerid);
ALTER TABLE inventory ADD CONSTRAINT inventory_pkey PRIMARY KEY (prod_id);
ALTER TABLE orders ADD CONSTRAINT orders_pkey PRIMARY KEY (orderid);
ALTER TABLE products ADD CONSTRAINT products_pkey PRIMARY KEY (prod_id);
CREATE INDEX ix_cust_hist_customerid ON cust_hist (customerid);
CREATE UNIQUE INDEX ix_cust_username ON customers (username);
CREATE INDEX ix_order_custid ON orders (customerid);
CREATE UNIQUE INDEX ix_orderlines_orderid ON orderlines (orderid, orderlineid);
CREATE INDEX ix_prod_category ON products (category);
CREATE INDEX ix_prod_special ON products (special);
ALTER TABLE cust_hist ADD CONSTRAINT fk_cust_hist_customerid
    FOREIGN KEY (customerid) REFERENCES customers (customerid) ON DELETE CASCADE;
ALTER TABLE orders ADD CONSTRAINT fk_customerid
    FOREIGN KEY (customerid) REFERENCES customers (customerid) ON DELETE SET NULL;
ALTER TABLE orderlines ADD CONSTRAINT fk_orderid
    FOREIGN KEY (orderid) REFERENCES orders (orderid) ON DELETE CASCADE;
SELECT setval(pg_get_serial_sequence('categories', 'category'), GREATEST(max(category), 1)) FROM categories;
SELECT setval(pg_get_serial_sequence('customers', 'customerid'), GREATEST(max(customerid), 1)) FROM customers;
SELECT setval(pg_get_serial_sequence('orders', 'orderid'), GREATEST(max(orderid), 1)) FROM orders;
SELECT setval(pg_get_serial_sequence('products', 'prod_id'), GREATEST(max(prod_id), 1)) FROM products;
