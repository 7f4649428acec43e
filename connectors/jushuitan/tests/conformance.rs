//! The marketplace suite against the Jushuitan sandbox (one company token
//! shared by every ERP shop, receiver phones in clear; the suite holds the
//! config to the 7-day window).

use quanyu_jushuitan::CONNECTOR;

quanyu_connector_sdk::market_suite!(CONNECTOR);
