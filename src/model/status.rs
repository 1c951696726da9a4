//! The proposal status table of the partner documentation (seed `000_…`).

use std::fmt;

/// A proposal status id, 0 to 11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(into = "u8")]
pub struct ProposalStatus(u8);

const NAMES: [&str; 12] = [
    "In Draft",
    "Under Review",
    "Approved",
    "Rejected",
    "Canceled",
    "Pending",
    "Finalized",
    "Verified",
    "Released",
    "Paid",
    "Assigned",
    "Payment Pending",
];

impl ProposalStatus {
    pub fn new(id: i64) -> Result<Self, String> {
        match u8::try_from(id) {
            Ok(id) if (id as usize) < NAMES.len() => Ok(Self(id)),
            _ => Err(format!(
                "unknown proposal status {id}: expected an id from 0 (In Draft) to 11 (Payment Pending)"
            )),
        }
    }

    pub fn id(self) -> u8 {
        self.0
    }

    /// The name partners and operators know it by ("Paid" for 9).
    pub fn name(self) -> &'static str {
        NAMES[self.0 as usize]
    }
}

impl From<ProposalStatus> for u8 {
    fn from(s: ProposalStatus) -> u8 {
        s.0
    }
}

impl fmt::Display for ProposalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

impl<'de> serde::Deserialize<'de> for ProposalStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = i64::deserialize(d)?;
        ProposalStatus::new(id).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_table() {
        assert_eq!(ProposalStatus::new(0).unwrap().name(), "In Draft");
        assert_eq!(ProposalStatus::new(8).unwrap().name(), "Released");
        assert_eq!(ProposalStatus::new(9).unwrap().name(), "Paid");
        assert_eq!(ProposalStatus::new(11).unwrap().name(), "Payment Pending");
        assert!(ProposalStatus::new(12).is_err());
        assert!(ProposalStatus::new(-1).is_err());
        assert!(serde_json::from_str::<ProposalStatus>("3.5").is_err());
    }
}
