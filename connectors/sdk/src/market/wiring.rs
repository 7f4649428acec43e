//! Shop and app wiring: one limiter per app key shared by all its shops,
//! per-shop and decrypt limiters, shop tokens, config checks.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::http::{ApiClient, Limiter};
use crate::secret::{Secret, SecretRef};
use crate::setup::{ConfigError, ConnectorSetup};
use crate::token::{ShopToken, TokenSet};
use crate::window::WindowPlan;
use quanyu_schemas::RefundRow;

use super::record::MappedOrder;
use super::stream::{Listing, RecordList, ShopStreams};

/// A shop authorized to an app by an access token (and the refresh token
/// that renews it), as most marketplaces configure one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenShop {
    /// The shop id used in the lake (the platform's shop id or a name of your choice).
    pub id: String,
    /// The shop's access token.
    pub access_token: SecretRef,
    /// The shop's refresh token (needed to refresh an expired access token).
    #[serde(default)]
    pub refresh_token: Option<SecretRef>,
}

impl TokenShop {
    /// The shops a sandbox announced, with the tokens its authorization
    /// gave them (given in code, never written in a config).
    pub fn announced(ann: &crate::sandbox::announce::SandboxAnnouncement) -> Vec<TokenShop> {
        let inline = |s: &str| SecretRef::inline(s.to_string());
        ann.shops
            .iter()
            .map(|s| TokenShop {
                id: s.id.clone(),
                access_token: inline(&s.access_token),
                refresh_token: s.refresh_token.as_deref().map(inline),
            })
            .collect()
    }
}

/// How the streams of one app key are wired to the process's services.
pub struct AppWiring<'a> {
    connector: &'static str,
    app: &'a str,
    setup: &'a ConnectorSetup,
    app_limiter: Option<Arc<Limiter>>,
}

impl<'a> AppWiring<'a> {
    /// Wiring for app `app` of `connector`, allowing `qps` requests per
    /// second for the app key in all (0 = no limit).
    pub fn new(connector: &'static str, app: &'a str, setup: &'a ConnectorSetup, qps: u32) -> Self {
        let app_limiter = setup
            .limiters
            .get(&format!("{connector}/{app}"), (qps > 0).then_some(qps));
        AppWiring {
            connector,
            app,
            setup,
            app_limiter,
        }
    }

    /// A configuration error about this app.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.connector, self.app, message)
    }

    /// Check `value` lies in `range`, naming the field when it does not.
    pub fn check_range<T: PartialOrd + std::fmt::Display>(
        &self,
        field: &str,
        value: T,
        range: std::ops::RangeInclusive<T>,
        why: &str,
    ) -> Result<(), ConfigError> {
        ConfigError::check_range(self.connector, self.app, field, value, range, why)
    }

    /// Resolve a secret, naming where it was looked for on failure.
    pub fn secret(&self, r: &SecretRef) -> Result<Secret, ConfigError> {
        ConfigError::secret(self.connector, self.app, r)
    }

    /// Resolve an optional secret.
    pub fn optional_secret(&self, r: Option<&SecretRef>) -> Result<Option<Secret>, ConfigError> {
        r.map(|r| self.secret(r)).transpose()
    }

    /// An HTTP client under the app's limiter only (token calls, shared
    /// clients).
    pub fn app_api(&self) -> ApiClient {
        ApiClient::new(
            self.app_limiter.iter().cloned().collect(),
            self.setup.policy,
        )
    }

    fn shop_limiters(&self, shop: &str, shop_qps: u32) -> Vec<Arc<Limiter>> {
        let shop_limiter = self.setup.limiters.get(
            &format!("{}/{}/{shop}", self.connector, self.app),
            (shop_qps > 0).then_some(shop_qps),
        );
        self.app_limiter
            .iter()
            .chain(shop_limiter.iter())
            .cloned()
            .collect()
    }

    /// An HTTP client for `shop`: the app's limiter and, where the platform
    /// also limits each shop, one of the shop's own (`shop_qps`, 0 = none).
    pub fn shop_api(&self, shop: &str, shop_qps: u32) -> ApiClient {
        ApiClient::new(self.shop_limiters(shop, shop_qps), self.setup.policy)
    }

    /// An HTTP client for `shop`'s decrypt calls: the shop's limiters plus
    /// the decrypt API's own, at `qps` per second (0 = no own limit).
    pub fn decrypt_api(&self, shop: &str, shop_qps: u32, qps: u32) -> ApiClient {
        let own = self.setup.limiters.get(
            &format!("{}/{}/{shop}/decrypt", self.connector, self.app),
            (qps > 0).then_some(qps),
        );
        self.decrypt_api_with(shop, shop_qps, own)
    }

    /// An HTTP client for decrypt calls budgeted per app (shared by its
    /// shops): the app's limiter plus the decrypt API's own at `qps`.
    pub fn app_decrypt_api(&self, qps: u32) -> ApiClient {
        let own = self.setup.limiters.get(
            &format!("{}/{}/decrypt", self.connector, self.app),
            (qps > 0).then_some(qps),
        );
        ApiClient::new(
            self.app_limiter.iter().cloned().chain(own).collect(),
            self.setup.policy,
        )
    }

    /// As [`AppWiring::decrypt_api`], with one decrypt call per `period`
    /// (Pinduoduo: one per 10 seconds; zero = no own limit).
    pub fn decrypt_api_every(&self, shop: &str, shop_qps: u32, period: Duration) -> ApiClient {
        let own = (!period.is_zero())
            .then(|| {
                self.setup.limiters.get_every(
                    &format!("{}/{}/{shop}/decrypt", self.connector, self.app),
                    period,
                )
            })
            .flatten();
        self.decrypt_api_with(shop, shop_qps, own)
    }

    fn decrypt_api_with(&self, shop: &str, shop_qps: u32, own: Option<Arc<Limiter>>) -> ApiClient {
        let limiters = self
            .shop_limiters(shop, shop_qps)
            .into_iter()
            .chain(own)
            .collect();
        ApiClient::new(limiters, self.setup.policy)
    }

    /// The live token of `shop`: the persisted one when it descends from
    /// the configured `configured`, else the configured one.
    pub fn shop_token(
        &self,
        shop: &str,
        configured: Option<TokenSet>,
    ) -> Result<Arc<ShopToken>, ConfigError> {
        ShopToken::open(
            &self.setup.tokens,
            &format!("{}/{}/{shop}", self.connector, self.app),
            configured,
        )
        .map(Arc::new)
        .map_err(|e| self.error(format!("shop {shop}: token store: {e}")))
    }

    /// One shop's streams in windows as `plan` cuts them, listed by
    /// `list(api)`: its orders as `orders` says and, when the section pulls
    /// refunds (`pull_refunds`), its refunds as `refunds` says (through a
    /// client counted apart).
    pub fn shop_streams<L: RecordList<MappedOrder> + RecordList<RefundRow>>(
        &self,
        shop: &str,
        (plan, pull_refunds): (WindowPlan, bool),
        api: &ApiClient,
        list: impl Fn(ApiClient) -> L,
        [orders, refunds]: [Listing; 2],
    ) -> ShopStreams<L> {
        let refunds = pull_refunds.then_some(refunds);
        ShopStreams::new((self.connector, shop), plan, api, list, orders, refunds)
    }

    /// The live token of a [`TokenShop`].
    pub fn token_of(&self, shop: &TokenShop) -> Result<Arc<ShopToken>, ConfigError> {
        let access = self.secret(&shop.access_token)?;
        let refresh = self.optional_secret(shop.refresh_token.as_ref())?;
        self.shop_token(&shop.id, Some(TokenSet::configured(access, refresh)))
    }
}

/// A marketplace's list type for one shop: its client (through the shop's
/// budget), the shop's token, its id and the page size, and any fields of
/// its own; it [`Lists`](crate::market::Lists) through the client.
/// `Name::new(client, &token, shop_id, &cfg.pull, ..own fields)` makes one.
///
/// `in "connector" by MAPPING` names the connector (for request contexts)
/// and its [`RecordMapping`](crate::market::RecordMapping): the list gets
/// `self.context(api)`, and `self.orders(&rctx, &params, &ANSWER, hasher)`
/// / `self.refunds(&rctx, &params, &ANSWER)`, which call `rctx.api` and
/// map the page's records. A `decrypt API with |items| params;` clause
/// makes it the shop's [`PhoneDecrypt`](crate::market::PhoneDecrypt):
/// `API` called with those parameters, its answer read by the mapping's
/// `[decrypt]` layout.
///
/// ```ignore
/// quanyu_connector_sdk::shop_list! {
///     /// `order.searchList` and `afterSale.List` of one shop.
///     struct SearchList(DyClient) in "douyin" by MAPPING;
///     decrypt DECRYPT_API with |items| serde_json::json!({ "cipher_infos": MAPPING.decrypt_items(items) });
/// }
/// ```
#[macro_export]
macro_rules! shop_list {
    (
        $(#[$meta:meta])*
        struct $name:ident($client:ty) $({ $($(#[$fmeta:meta])* $field:ident: $fty:ty),* $(,)? })?
            in $connector:literal by $mapping:path;
        $(decrypt $decrypt_api:ident with |$items:ident| $params:expr;)?
    ) => {
        $(#[$meta])*
        #[derive(Clone)]
        struct $name {
            client: $client,
            token: std::sync::Arc<$crate::ShopToken>,
            shop: String,
            page_size: u32,
            $($($(#[$fmeta])* $field: $fty,)*)?
        }

        impl $name {
            /// The list of shop `shop` through `client` with its `token`,
            /// in pages of `pull.page_size`.
            fn new(
                client: $client,
                token: &std::sync::Arc<$crate::ShopToken>,
                shop: &str,
                pull: &$crate::market::PullSettings,
                $($($field: $fty,)*)?
            ) -> Self {
                $name {
                    client,
                    token: token.clone(),
                    shop: shop.to_string(),
                    page_size: pull.page_size,
                    $($($field,)*)?
                }
            }

            /// The context of this shop's request to `api`.
            #[allow(dead_code)]
            fn context(&self, api: &str) -> $crate::RequestContext {
                $crate::RequestContext::new($connector, Some(&self.shop), api)
            }

            /// One page of orders: `rctx.api` called with `params`, its
            /// records where `answer` says, mapped (phones hashed by `hasher`).
            #[allow(dead_code)]
            async fn orders(
                &self,
                rctx: &$crate::RequestContext,
                params: &<$client as $crate::market::TokenGateway>::Params,
                answer: &$crate::market::ListAnswer,
                hasher: &$crate::market::prelude::PiiHasher,
            ) -> Result<$crate::market::ListPage, $crate::ConnectorError> {
                let map = |raw: &str| $mapping.order(raw, &self.shop, hasher);
                $crate::market::TokenGateway::list_page(
                    &self.client, rctx, &rctx.api, &self.token, params, answer, map,
                )
                .await
            }

            /// One page of refunds: `rctx.api` called with `params`, its
            /// records where `answer` says, mapped.
            #[allow(dead_code)]
            async fn refunds(
                &self,
                rctx: &$crate::RequestContext,
                params: &<$client as $crate::market::TokenGateway>::Params,
                answer: &$crate::market::ListAnswer,
            ) -> Result<$crate::market::ListPage<$crate::market::prelude::RefundRow>, $crate::ConnectorError> {
                let map = |raw: &str| $mapping.refund(raw, &self.shop);
                $crate::market::TokenGateway::list_page(
                    &self.client, rctx, &rctx.api, &self.token, params, answer, map,
                )
                .await
            }
        }

        impl $crate::market::Lists for $name {
            fn http(&self) -> &$crate::ApiClient {
                $crate::market::TokenGateway::api(&self.client)
            }
        }

        $(
            #[$crate::market::prelude::async_trait]
            impl $crate::market::PhoneDecrypt for $name {
                async fn decrypt(
                    &self,
                    $items: &[(&str, &str)],
                ) -> Result<Vec<Option<String>>, $crate::ConnectorError> {
                    let rctx = self.context($decrypt_api);
                    let params = $params;
                    let body = $crate::market::TokenGateway::call(
                        &self.client, &rctx, &rctx.api, &self.token, &params,
                    )
                    .await?;
                    $mapping.decrypted(&rctx, &body, $items)
                }
            }
        )?
    };
}
