//! Keyset pagination. A cursor names the last row of a page by its sort key and id, so pages stay stable
//! while rows are inserted or deleted between requests.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// A page of a list, newest first unless `sort_dir=asc`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Pagination {
    pub has_more: bool,
    /// Pass as `cursor` to get the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// `cursor` and `limit`, as every list reads them (`validation::Fields::page`).
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// `pagination.next_cursor` of the previous page.
    #[param(value_type = Option<String>, min_length = 1, max_length = 1000)]
    pub cursor: Option<Cursor>,
    /// Rows per page (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: i64,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only tells that there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> Cursor) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more {
            rows.last().map(|row| cursor_of(row).encode())
        } else {
            None
        };
        Page {
            data: rows,
            pagination: Pagination {
                has_more,
                next_cursor,
            },
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            pagination: self.pagination,
        }
    }
}

/// Pages a small list already sorted by a unique text key (participant state), keyed by that text.
pub fn page_by_key<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    cursor: Option<Cursor>,
    limit: i64,
) -> Page<T> {
    let rows: Vec<T> = items
        .into_iter()
        .filter(|item| cursor.as_ref().is_none_or(|c| key(item) > c.key.as_str()))
        .take(usize::try_from(limit).unwrap_or(0) + 1)
        .collect();
    Page::from_rows(rows, limit, |item| Cursor::new(key(item), Uuid::nil()))
}

/// Position after a row: its sort key rendered as text (cast back in SQL) and its id as tie-breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub key: String,
    pub id: Uuid,
}

/// A timestamp as text at the database's microsecond precision: as a cursor key, and wherever a time must
/// read the same when it comes back from the database (hashed forms of requests and entries).
pub fn time_key(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Cursor {
    pub fn new(key: impl ToString, id: Uuid) -> Self {
        Cursor {
            key: key.to_string(),
            id,
        }
    }

    /// The cursor of a row sorted by a timestamp.
    pub fn at(time: DateTime<Utc>, id: Uuid) -> Self {
        Cursor::new(time_key(time), id)
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.id, self.key))
    }

    /// `None` when `text` is not a cursor this server issued.
    pub fn decode(text: &str) -> Option<Self> {
        let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let (id, key) = decoded.split_once('|')?;
        Some(Cursor {
            key: key.to_owned(),
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// The ordering of a list: an SQL sort expression, the Postgres type its cursor key casts to, and direction.
#[derive(Debug, Clone, Copy)]
pub struct Order {
    pub column: &'static str,
    pub sql_type: &'static str,
    pub descending: bool,
}

impl Order {
    /// Newest first, by `created_at`: how most lists run.
    pub const NEWEST_FIRST: Order = Order {
        column: "created_at",
        sql_type: "timestamptz",
        descending: true,
    };

    /// Appends `AND (column, id) >|< (cursor)` when there is a cursor, then `ORDER BY … LIMIT limit + 1`.
    /// `id_column` is the row id the cursor carries.
    pub fn push(
        &self,
        query: &mut QueryBuilder<'_, Postgres>,
        id_column: &str,
        cursor: Option<Cursor>,
        limit: i64,
    ) {
        let (cmp, dir) = if self.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(cursor) = cursor {
            query.push(format_args!(" AND ({}, {id_column}) {cmp} (", self.column));
            query
                .push_bind(cursor.key)
                .push(format_args!("::{}, ", self.sql_type));
            query.push_bind(cursor.id).push(")");
        }
        query.push(format_args!(
            " ORDER BY {} {dir}, {id_column} {dir} LIMIT ",
            self.column
        ));
        query.push_bind(limit + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let cursor = Cursor::new("2024-01-15T10:30:00.123456Z", Uuid::now_v7());
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        for bad in ["%%%", "YWJjMTIz", ""] {
            assert_eq!(Cursor::decode(bad), None);
        }
    }

    #[test]
    fn page_keeps_limit_rows_and_points_after_the_last() {
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let page = Page::from_rows(ids.clone(), 3, |id| Cursor::new("k", *id));
        assert_eq!(page.data, ids[..3]);
        assert!(page.pagination.has_more);
        assert_eq!(
            page.pagination.next_cursor,
            Some(Cursor::new("k", ids[2]).encode())
        );
    }
}
