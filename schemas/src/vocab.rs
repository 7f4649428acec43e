//! Closed vocabularies. Every source maps into these; a value outside them is
//! a quarantine reason, never a new free-text category.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the lake.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        concat!("unknown ", stringify!($name), " {:?}"),
                        other
                    )),
                }
            }
        }
    };
}

vocabulary! {
    /// Where a record came from.
    Channel {
        /// Tmall / Taobao (TOP).
        Taobao => "taobao",
        /// JD POP.
        Jd => "jd",
        /// Pinduoduo.
        Pdd => "pdd",
        /// Douyin shop (抖店).
        Douyin => "douyin",
        /// Kuaishou shop.
        Kuaishou => "kuaishou",
        /// Jushuitan ERP.
        Jushuitan => "jushuitan",
        /// Youzan (有赞) mall: the brand's own WeChat store.
        Youzan => "youzan",
        /// WeChat Channels shop (微信小店).
        WechatShop => "wechat_shop",
        /// WeCom customer contacts (企业微信).
        Wecom => "wecom",
        /// A brand CRM database or export.
        Crm => "crm",
    }
}

vocabulary! {
    /// Order lifecycle, the same for every platform.
    OrderStatus {
        /// Created, not paid yet.
        PendingPayment => "pending_payment",
        /// Paid, waiting for shipment.
        Paid => "paid",
        /// Shipped in whole or in part.
        Shipped => "shipped",
        /// Delivered / signed for, not yet final.
        Delivered => "delivered",
        /// Finished successfully.
        Completed => "completed",
        /// Closed after payment through a full refund.
        Refunded => "refunded",
        /// Closed before payment.
        Cancelled => "cancelled",
    }
}

impl OrderStatus {
    /// True when money was taken and not returned, so the order counts in GMV.
    pub fn counts_in_gmv(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid
                | OrderStatus::Shipped
                | OrderStatus::Delivered
                | OrderStatus::Completed
        )
    }
}

vocabulary! {
    /// Identifier types: the node types of the identity graph.
    IdType {
        /// HMAC of a normalized mobile number.
        PhoneHash => "phone_hash",
        /// WeChat unionid (global across a brand's WeChat apps).
        Unionid => "unionid",
        /// WeCom external_userid (global within one corp).
        WecomExternalUserid => "wecom_external_userid",
        /// Taobao buyer_open_uid, stable only within one shop: `ouid@shop`.
        TaobaoBuyer => "taobao_buyer",
        /// An order, `channel:shop:order_id`; links a card scan's `state` to the buyer.
        Order => "order",
    }
}

vocabulary! {
    /// The bridges that move buyers into private channels: the `channel` of a
    /// touchpoint.
    Bridge {
        /// The QR code on a package-insert card (包裹卡).
        PackageCard => "package_card",
        /// An AI outbound call (AI外呼).
        AiCall => "ai_call",
        /// An AI / bulk SMS (AI短信).
        AiSms => "ai_sms",
        /// A call by a person.
        ManualCall => "manual_call",
        /// Sign-up in a physical store.
        Store => "store",
        /// WeCom itself: a contact event with no known bridge.
        Wecom => "wecom",
    }
}

vocabulary! {
    /// What happened at a touchpoint.
    TouchEvent {
        /// A card / QR was scanned.
        Scan => "scan",
        /// A call was placed.
        Call => "call",
        /// An SMS was sent.
        Sms => "sms",
        /// The customer was added as a WeCom contact.
        FriendAdded => "friend_added",
        /// The customer was added, pending the rep's confirmation.
        FriendHalfAdded => "friend_half_added",
        /// The contact's remark, tags or description changed.
        FriendEdited => "friend_edited",
        /// The rep deleted the customer.
        FriendDeleted => "friend_deleted",
        /// The customer deleted the rep.
        DeletedByCustomer => "deleted_by_customer",
        /// A contact transfer between reps failed.
        TransferFailed => "transfer_failed",
    }
}

vocabulary! {
    /// How a touchpoint ended.
    Outcome {
        /// The call was answered.
        Connected => "connected",
        /// Rang out.
        NoAnswer => "no_answer",
        /// The line was busy.
        Busy => "busy",
        /// The callee refused / hung up at once.
        Refused => "refused",
        /// The phone was off.
        PowerOff => "power_off",
        /// The number is suspended / out of service (停机).
        OutOfService => "out_of_service",
        /// The number does not exist (空号).
        VacantNumber => "vacant_number",
        /// Could not connect for another reason (无法接通, line or system errors).
        Unreachable => "unreachable",
        /// The message was sent / the event happened.
        Done => "done",
    }
}

vocabulary! {
    /// Where a refund or after-sale request stands: the `status` of a
    /// `refunds` row.
    RefundStatus {
        /// Asked for, not settled yet (waiting for the seller, the goods or
        /// the payment).
        Pending => "pending",
        /// The money went back to the buyer.
        Succeeded => "succeeded",
        /// Refused, withdrawn or expired: no money went back.
        Closed => "closed",
    }
}
