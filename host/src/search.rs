//! Filters that lists share: partial-match search (`search=` on programs, assets, participants and rules)
//! and time ranges open at either end.

/// `%text%` for ILIKE, with the wildcard characters of `text` escaped.
pub fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Narrows a list to rows whose `column` is at or after `from` and at or before `to`; an absent end leaves
/// that side open.
pub fn push_range(
    q: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
    column: &str,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) {
    if let Some(from) = from {
        q.push(format_args!(" AND {column} >= ")).push_bind(from);
    }
    if let Some(to) = to {
        q.push(format_args!(" AND {column} <= ")).push_bind(to);
    }
}
