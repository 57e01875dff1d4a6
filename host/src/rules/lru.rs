//! A least-recently-used map bounded by the total weight of its values (bytes, for the rule cache).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

pub struct Lru<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Keys by when they were last used: the first is the next to go.
    order: BTreeMap<u64, K>,
    clock: u64,
    weight: usize,
    capacity: usize,
}

struct Entry<V> {
    value: V,
    weight: usize,
    used: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    pub fn new(capacity: usize) -> Self {
        Lru {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
            weight: 0,
            capacity,
        }
    }

    /// The value, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.get_mut(key)?;
        self.order.remove(&entry.used);
        self.clock += 1;
        entry.used = self.clock;
        self.order.insert(self.clock, key.clone());
        Some(entry.value.clone())
    }

    /// Inserts the value, then drops the least recently used others until the total weight is within the
    /// capacity. The value just inserted stays even when it alone weighs more.
    pub fn insert(&mut self, key: K, value: V, weight: usize) {
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&old.used);
            self.weight -= old.weight;
        }
        self.clock += 1;
        self.order.insert(self.clock, key.clone());
        self.entries.insert(
            key,
            Entry {
                value,
                weight,
                used: self.clock,
            },
        );
        self.weight += weight;
        while self.weight > self.capacity && self.entries.len() > 1 {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(evicted) = self.entries.remove(&oldest) {
                self.weight -= evicted.weight;
            }
        }
    }

    /// The total weight held.
    #[cfg(test)]
    pub fn weight(&self) -> usize {
        self.weight
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_first_once_the_weight_passes_the_capacity() {
        let mut lru = Lru::new(100);
        lru.insert("a", 1, 40);
        lru.insert("b", 2, 40);
        assert_eq!(lru.get(&"a"), Some(1), "a is now more recent than b");
        lru.insert("c", 3, 40);
        assert!(!lru.contains(&"b"), "b was the least recently used");
        assert!(lru.contains(&"a") && lru.contains(&"c"));
        assert_eq!(lru.weight(), 80);
        lru.insert("d", 4, 30);
        assert_eq!((lru.len(), lru.weight()), (2, 70), "a went: c and d remain");
        assert!(lru.contains(&"c") && lru.contains(&"d"));
    }

    #[test]
    fn a_value_heavier_than_the_capacity_stays_alone() {
        let mut lru = Lru::new(10);
        lru.insert(1, "small", 5);
        lru.insert(2, "huge", 50);
        assert_eq!((lru.len(), lru.weight()), (1, 50));
        assert_eq!(lru.get(&2), Some("huge"));
        lru.insert(2, "replaced", 3);
        assert_eq!(
            (lru.len(), lru.weight()),
            (1, 3),
            "a replaced value's weight is not counted twice"
        );
    }
}
