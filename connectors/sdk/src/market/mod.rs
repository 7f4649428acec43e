//! The marketplace kit: everything a marketplace's order connector has in
//! common, so that a platform's folder holds only what is its own (request
//! parameters, envelope and error codes, signing, mapping, the emulator).
//!
//! - [`ListAnswer`]: where a list's answer holds its records, total and
//!   next cursor, by path: the page is read once whatever the envelope.
//! - [`RecordList`]: the one thing a platform implements for each of its
//!   lists (orders, refunds): fetch one page of a window and map its
//!   records ([`MappedOrder`] with its lines, or a refund row).
//! - [`Paging`]: how the list pages (numbered pages read backwards by the
//!   total, 0- or 1-based; or a forward cursor), with one page guard.
//! - [`OrderStream`] / [`RefundStream`]: the windowed stream built from the two: it
//!   pages, deduplicates within the window, quarantines what does not map,
//!   decrypts phones in batches ([`PhoneDecrypt`]), builds Arrow and hands
//!   the page to the sink (the one page emitter).
//! - [`TokenGateway`]: a signed gateway whose provided `call` refreshes the
//!   shop token when the platform says it expired, and persists it.
//! - [`AppWiring`]: one limiter per app key shared by its shops, per-shop
//!   and decrypt limiters, shop tokens opened from the token store.
//! - [`market_config!`](crate::market_config) and [`PullSettings`]: the
//!   pull settings every section has, declared and checked once.

/// A visitor's scalar visits, which only say what kind of value stood
/// there (`|kind| value` makes the visitor's value of it; plain, the kind
/// is the value).
macro_rules! scalars_say_their_kind {
    () => {
        scalars_say_their_kind!(|kind| kind);
    };
    (|$kind:ident| $value:expr) => {
        scalars_say_their_kind!(@each |$kind| $value;
            visit_bool(bool) "a boolean", visit_i64(i64) "a number",
            visit_u64(u64) "a number", visit_f64(f64) "a number", visit_str(&str) "a string");

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            let $kind = "null";
            Ok($value)
        }
    };
    (@each |$kind:ident| $value:expr; $($visit:ident($t:ty) $name:literal),*) => {$(
        fn $visit<E>(self, _: $t) -> Result<Self::Value, E> {
            let $kind = $name;
            Ok($value)
        }
    )*};
}

mod answer;
mod decrypt;
mod gateway;
mod lists;
mod mapping;
mod paging;
pub mod prelude;
mod record;
mod settings;
mod signing;
mod stream;
mod wiring;

pub use answer::ListAnswer;
pub use decrypt::{decrypt_phones, PhoneDecrypt};
pub use gateway::{
    no_access_token, post_json_attempt, read_envelope, refresh_by_get, refresh_refused,
    refresh_token_of, RefreshAnswer, SignedCall, TokenGateway,
};
pub use lists::Lists;
pub use mapping::RecordMapping;
pub use paging::{Paging, MAX_PAGES_PER_WINDOW};
pub use record::{
    code_text, error_text, int_of, item_count_of, lines_of, phones_for, read_answer,
    read_token_answer, says, text_of, values_of, yuan_of, Line, MappedOrder, Rejected,
};
pub use settings::{PlatformFacts, PullDefaults, PullLimits, PullSettings, Pulled};
pub use signing::sorted_params_text;
pub use stream::{
    each_shop, ListPage, ListStream, Listed, Listing, OrderStream, PageAt, PageQuery, RecordList,
    RefundStream, ShopStreams,
};
pub use wiring::{AppWiring, TokenShop};
