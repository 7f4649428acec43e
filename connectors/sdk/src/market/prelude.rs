//! What a marketplace connector's `lib.rs` uses, in one import:
//! `use quanyu_connector_sdk::market::prelude::*;`.

pub use std::sync::Arc;

pub use async_trait::async_trait;
pub use chrono::Duration;
pub use quanyu_schemas::time::format_beijing;
pub use quanyu_schemas::{OrderLineRow, PiiHasher, RefundRow, RefundStatus};
pub use serde::Deserialize;
pub use serde_json::value::RawValue;

pub use super::{
    each_shop, int_of, phones_for, read_answer, text_of, AppWiring, ListAnswer, ListPage, Listing,
    Lists, MappedOrder, OrderStream, PageAt, PageQuery, Paging, PhoneDecrypt, PullLimits,
    RecordList, RefundStream, Rejected, SignedCall, TokenGateway, TokenShop,
};
pub use crate::connector::{ConnectorSpec, OrderIds};
pub use crate::{
    ApiClient, ConfigError, ConnectorError, ConnectorSetup, ErrorKind, RequestContext, Secret,
    SecretRef, ShopToken, Stream, TokenSet, Window,
};
