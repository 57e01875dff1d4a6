//! Tenants and their API keys. Every row in the database belongs to one organization; a key grants full
//! access to its organization and nothing else. Keys are shown once and stored as SHA-256 hashes.

mod repo;

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Who is making a request: the organization every query is scoped to, and the key recorded on writes.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub organization_id: Uuid,
    pub api_key_id: Uuid,
}

pub struct NewKey {
    pub organization_id: Uuid,
    pub api_key_id: Uuid,
    /// The secret itself (`sk_…`); not stored anywhere.
    pub key: String,
}

/// Creates the organization `name` if it does not exist yet, and a new key for it.
pub async fn create_api_key(pool: &PgPool, organization: &str) -> Result<NewKey> {
    let name = organization.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(Error::Internal(
            "organization name must be 1 to 255 characters".into(),
        ));
    }
    let mut secret = [0u8; 24];
    getrandom::fill(&mut secret)
        .map_err(|e| Error::Internal(format!("no randomness available: {e}")))?;
    let key = format!("sk_{}", hex(&secret));
    let mut tx = pool.begin().await?;
    let organization_id = repo::find_or_create_organization(&mut tx, Uuid::now_v7(), name).await?;
    let api_key_id = Uuid::now_v7();
    repo::insert_api_key(&mut tx, api_key_id, organization_id, &hash(&key), &key[..7]).await?;
    tx.commit().await?;
    Ok(NewKey {
        organization_id,
        api_key_id,
        key,
    })
}

/// Resolves a presented key to its organization; unknown and revoked keys are `Unauthorized`, and so is
/// anything not shaped like a key this server makes, without a query.
pub async fn authenticate(pool: &PgPool, key: &str) -> Result<Actor> {
    let secret = key.strip_prefix("sk_").unwrap_or_default();
    if secret.len() != 48 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Unauthorized);
    }
    repo::find_active_key(pool, &hash(key))
        .await?
        .map(|(api_key_id, organization_id)| Actor {
            organization_id,
            api_key_id,
        })
        .ok_or(Error::Unauthorized)
}

/// Keys recently looked up, so most requests authenticate without a query: active keys' actors, and the
/// refusals of unknown or revoked keys, so that a client repeating a bad key does not load the database
/// either. The two are kept apart, so that a flood of distinct bad keys never pushes out the good ones. An
/// entry is trusted for [`KeyCache::TTL`]: a key revoked in the database stops working within that time in
/// every process.
#[derive(Debug, Default)]
pub struct KeyCache {
    accepted: Remembered<Actor>,
    refused: Remembered<()>,
}

impl KeyCache {
    pub const TTL: Duration = Duration::from_secs(10);

    /// [`authenticate`], answered from the cache while the entry is fresh.
    pub async fn authenticate(&self, pool: &PgPool, key: &str) -> Result<Actor> {
        let hashed = hash(key);
        if let Some(actor) = self.accepted.get(&hashed) {
            return Ok(actor);
        }
        if self.refused.get(&hashed).is_some() {
            return Err(Error::Unauthorized);
        }
        match authenticate(pool, key).await {
            Ok(actor) => {
                self.accepted.put(hashed, actor);
                Ok(actor)
            }
            Err(Error::Unauthorized) => {
                self.refused.put(hashed, ());
                Err(Error::Unauthorized)
            }
            Err(other) => Err(other),
        }
    }
}

/// What lookups by key hash found, and when; fresh for [`KeyCache::TTL`].
#[derive(Debug)]
struct Remembered<T>(Mutex<HashMap<Vec<u8>, (T, Instant)>>);

impl<T> Default for Remembered<T> {
    fn default() -> Self {
        Remembered(Mutex::default())
    }
}

impl<T: Copy> Remembered<T> {
    /// A guard, not an eviction policy: past this many entries the map starts over.
    const MAX: usize = 10_000;

    fn get(&self, hashed: &[u8]) -> Option<T> {
        let found = self.0.lock().ok()?;
        found
            .get(hashed)
            .filter(|(_, at)| at.elapsed() < KeyCache::TTL)
            .map(|(value, _)| *value)
    }

    fn put(&self, hashed: Vec<u8>, value: T) {
        if let Ok(mut found) = self.0.lock() {
            if found.len() >= Self::MAX {
                found.clear();
            }
            found.insert(hashed, (value, Instant::now()));
        }
    }
}

pub async fn organization_exists(pool: &PgPool) -> Result<bool> {
    Ok(repo::any_organization(pool).await?)
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
