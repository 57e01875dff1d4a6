//! Ids are UUIDv7: they sort by the millisecond they were made in, and within a process by the order they
//! were made in, so an id is also a point in the order things happened.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The smallest UUIDv7 of the millisecond `at` falls in: every id made from then on sorts after it.
pub fn first_at(at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    Uuid::from_bytes(bytes)
}

/// The millisecond a UUIDv7 was made in.
pub fn time_of(id: Uuid) -> DateTime<Utc> {
    let bytes = id.as_bytes();
    let mut millis = [0u8; 8];
    millis[2..].copy_from_slice(&bytes[..6]);
    let millis = i64::try_from(u64::from_be_bytes(millis)).unwrap_or(i64::MAX);
    DateTime::from_timestamp_millis(millis).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_id_of_a_millisecond_sorts_before_ids_made_in_it_and_after_earlier_ones() {
        let before = Uuid::now_v7();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let at = Utc::now();
        let floor = first_at(at);
        let after = Uuid::now_v7();
        assert!(before < floor, "{before} < {floor}");
        assert!(floor <= after, "{floor} <= {after}");
        assert_eq!(floor.get_version_num(), 7);
        assert_eq!(time_of(floor).timestamp_millis(), at.timestamp_millis());
    }
}
