//! Partial-match search in lists (`search=` on programs, assets, participants and rules).

/// `%text%` for ILIKE, with the wildcard characters of `text` escaped.
pub fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}
