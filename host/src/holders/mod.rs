//! Holders of value and state: participants and groups. Both have accounts, lots, tags, attributes, counters
//! and a state history, kept by the same code (`state`, `ledger::lots`, `movement`); an id names one holder
//! whatever its kind. `holder_state` is the state API (E22–E33, E47; E69–E81) for either kind.

pub mod state;

use crate::ledger::Owner;
use uuid::Uuid;

crate::vocabulary!(
    /// The kind of holder, as lots and tiers store it.
    pub enum HolderType {
        Participant = "PARTICIPANT",
        Group = "GROUP",
    }
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Holder {
    Participant(Uuid),
    Group(Uuid),
}

impl Holder {
    pub fn id(self) -> Uuid {
        match self {
            Holder::Participant(id) | Holder::Group(id) => id,
        }
    }

    pub fn of(kind: HolderType, id: Uuid) -> Holder {
        match kind {
            HolderType::Participant => Holder::Participant(id),
            HolderType::Group => Holder::Group(id),
        }
    }

    pub fn kind(self) -> HolderType {
        match self {
            Holder::Participant(_) => HolderType::Participant,
            Holder::Group(_) => HolderType::Group,
        }
    }

    /// Whose accounts hold its value.
    pub fn owner(self) -> Owner {
        match self {
            Holder::Participant(id) => Owner::Participant(id),
            Holder::Group(id) => Owner::Group(id),
        }
    }

    /// What a 404 calls it.
    pub fn noun(self) -> &'static str {
        match self {
            Holder::Participant(_) => "participant",
            Holder::Group(_) => "group",
        }
    }
}

/// As results name a holder: `{"participant_id": …}` or `{"group_id": …}`.
impl serde::Serialize for Holder {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        match self {
            Holder::Participant(id) => map.serialize_entry("participant_id", id)?,
            Holder::Group(id) => map.serialize_entry("group_id", id)?,
        }
        map.end()
    }
}
