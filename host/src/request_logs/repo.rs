use super::{DailyUsage, Entry, LogFilter, LogSort, RequestLog, RequestLogDetail};
use crate::pagination::Order;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

const LIST: &str = "id, request_id, method, path, route_pattern, status_code, duration_ms, auth_type, \
                    error_code, created_at";

/// Inserts the entries, each with its bodies as logs keep them.
pub async fn insert(
    pool: &PgPool,
    entries: &[Entry],
    bodies: &[[Option<serde_json::Value>; 2]],
) -> sqlx::Result<()> {
    let mut q = QueryBuilder::<Postgres>::new(
        "INSERT INTO request_logs (id, organization_id, request_id, method, path, route_pattern, status_code,
             duration_ms, auth_type, error_code, ip_address, user_agent, request_body, response_body,
             created_at) ",
    );
    q.push_values(
        entries.iter().zip(bodies),
        |mut row, (e, [request, response])| {
            row.push_bind(Uuid::now_v7())
                .push_bind(e.organization_id)
                .push_bind(&e.request_id)
                .push_bind(&e.method)
                .push_bind(&e.path)
                .push_bind(&e.route_pattern)
                .push_bind(e.status_code)
                .push_bind(e.duration_ms)
                .push_bind(e.auth_type)
                .push_bind(&e.error_code)
                .push_bind(&e.ip_address)
                .push_bind(&e.user_agent)
                .push_bind(request.as_ref().map(sqlx::types::Json))
                .push_bind(response.as_ref().map(sqlx::types::Json))
                .push_bind(e.created_at);
        },
    );
    q.build().execute(pool).await?;
    Ok(())
}

pub async fn delete_older(pool: &PgPool, days: u32, limit: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM request_logs WHERE id IN (
             SELECT id FROM request_logs WHERE created_at < now() - $1 * interval '1 day' LIMIT $2)",
    )
    .bind(i64::from(days))
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    f: &LogFilter,
) -> sqlx::Result<Vec<RequestLog>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {LIST} FROM request_logs WHERE organization_id = "
    ));
    q.push_bind(organization_id);
    if let Some(method) = &f.method {
        q.push(" AND method = ")
            .push_bind(method.to_ascii_uppercase());
    }
    if let Some(route) = &f.route_pattern {
        q.push(" AND route_pattern = ").push_bind(route);
    }
    if let Some(request_id) = &f.request_id {
        let bare = request_id.strip_prefix("req_").unwrap_or(request_id);
        q.push(" AND request_id = ")
            .push_bind(format!("req_{bare}"));
    }
    if let Some(auth_type) = f.auth_type {
        q.push(" AND auth_type = ").push_bind(auth_type);
    }
    if let Some(min) = f.status_min {
        q.push(" AND status_code >= ").push_bind(min);
    }
    if let Some(max) = f.status_max {
        q.push(" AND status_code <= ").push_bind(max);
    }
    if let Some(from) = f.from {
        q.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        q.push(" AND created_at <= ").push_bind(to);
    }
    let (column, sql_type) = match f.sort_by {
        LogSort::CreatedAt => ("created_at", "timestamptz"),
        LogSort::DurationMs => ("duration_ms", "integer"),
        LogSort::StatusCode => ("status_code", "integer"),
    };
    let order = Order {
        column,
        sql_type,
        descending: !f.ascending,
    };
    order.push(&mut q, "id", f.cursor.clone(), f.limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn find(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<RequestLogDetail>> {
    sqlx::query_as(&format!(
        "SELECT {LIST}, ip_address, user_agent, request_body, response_body FROM request_logs
          WHERE id = $1 AND organization_id = $2"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(pool)
    .await
}

pub async fn usage(
    pool: &PgPool,
    organization_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> sqlx::Result<Vec<DailyUsage>> {
    sqlx::query_as(
        "SELECT (created_at AT TIME ZONE 'UTC')::date AS date, count(*) AS request_count,
                count(*) FILTER (WHERE status_code >= 400) AS error_count,
                round(avg(duration_ms))::bigint AS avg_latency_ms
           FROM request_logs
          WHERE organization_id = $1 AND created_at >= $2 AND created_at <= $3
          GROUP BY 1 ORDER BY 1",
    )
    .bind(organization_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}
