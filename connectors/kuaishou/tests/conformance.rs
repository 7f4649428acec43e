//! The marketplace suite against the Kuaishou sandbox, plus what is
//! Kuaishou's own: the gateway's window and page limits and both HTTP
//! verbs (with an MD5-signed client), and the official SDK.

use quanyu_connector_sdk::conformance::market::{self, Started};
use quanyu_connector_sdk::conformance::{self};
use quanyu_connector_sdk::market::TokenGateway;
use quanyu_connector_sdk::sandbox::FaultConfig;
use quanyu_connector_sdk::{ApiClient, RequestContext, Secret};
use quanyu_kuaishou::{KsClient, KsParam, SignMethod, CONNECTOR, CURSOR_LIST_API};

quanyu_connector_sdk::market_suite!(CONNECTOR);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_and_page_limits_are_enforced() {
    let sb = Started::start(&CONNECTOR, FaultConfig::default(), 50).await;
    // The suite checks the config against the limits; the gateway itself
    // refuses both too, with its business envelope.
    let ann = &sb.announcement;
    let client = KsClient::new(
        ApiClient::new(vec![], conformance::fast_retry_policy()),
        &ann.base_url,
        &ann.base_url,
        &ann.app_key,
        Secret::new(&ann.app_secret),
        Secret::new(ann.sign_secret.as_deref().unwrap_or_default()),
        SignMethod::Md5,
    );
    let token = sb.first_shop_token();
    let ctx = RequestContext::new("kuaishou", Some("s"), CURSOR_LIST_API);
    let end = sb.core().as_of().timestamp_millis();
    let param = |begin: i64, size: u32| {
        serde_json::json!({"orderViewStatus":1,"pageSize":size,"sort":1,"queryType":2,
            "beginTime":begin,"endTime":end,"cursor":""})
        .to_string()
    };
    for (begin, size, why) in [
        (end - 8 * 86_400_000, 50, "7天"),
        (end - 86_400_000, 51, "pageSize"),
    ] {
        market::assert_refused(
            client
                .call(
                    &ctx,
                    CURSOR_LIST_API,
                    &token,
                    &KsParam::post(param(begin, size)),
                )
                .await,
            "2001",
            why,
        );
    }
    // A valid call by GET and by POST both succeed.
    for post in [false, true] {
        let json = param(end - 86_400_000, 50);
        client
            .call(&ctx, CURSOR_LIST_API, &token, &KsParam { json, post })
            .await
            .unwrap();
    }
    sb.stop().await;
}
