//! Batch phone decrypt: the platform says how to decrypt one batch; the
//! kit picks the rows, cuts batches, normalizes and hashes at once.

use async_trait::async_trait;
use quanyu_schemas::{normalize_phone, PiiHasher};

use crate::error::ConnectorError;

use super::lists::Lists;
use super::record::MappedOrder;

/// A platform's batch decrypt API, under its own rate limit (its client
/// is the one [`Lists::http`] names).
#[async_trait]
pub trait PhoneDecrypt: Lists {
    /// Decrypt one batch of `(order id, ciphertext)`; the answer holds the
    /// clear phone for each item in the same order (`None` where the
    /// platform returned none for it). A call failure after retries fails
    /// the pull like any call.
    async fn decrypt(&self, items: &[(&str, &str)]) -> Result<Vec<Option<String>>, ConnectorError>;
}

/// Decrypt the phones of `orders` that have a ciphertext and no hash, in
/// batches of at most `batch` (the platform's limit), and hash them at once (the mask is kept). A
/// record the platform could not decrypt keeps its row without the hash;
/// a warning names shop and order, never the phone.
pub async fn decrypt_phones(
    decrypt: &dyn PhoneDecrypt,
    batch: usize,
    shop: &str,
    orders: &mut [MappedOrder],
    hasher: &PiiHasher,
) -> Result<(), ConnectorError> {
    let wanted: Vec<usize> = (0..orders.len())
        .filter(|&i| orders[i].row.phone_hash.is_none() && orders[i].cipher.is_some())
        .collect();
    for chunk in wanted.chunks(batch.max(1)) {
        let items: Vec<(&str, &str)> = chunk
            .iter()
            .map(|&i| {
                (
                    orders[i].row.order_id.as_str(),
                    orders[i].cipher.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        let phones = decrypt.decrypt(&items).await?;
        for (n, &i) in chunk.iter().enumerate() {
            match phones
                .get(n)
                .and_then(Option::as_deref)
                .map(normalize_phone)
            {
                Some(Ok(p)) => {
                    orders[i].row.phone_hash = Some(hasher.phone(&p));
                    orders[i].row.phone_masked = Some(p.masked());
                }
                _ => tracing::warn!(
                    shop,
                    order = %orders[i].row.order_id,
                    "decrypt returned no usable mobile for this order"
                ),
            }
        }
    }
    Ok(())
}
