//! The event catalog (CONTRACT §6).

use super::{Method, wire_enum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ProposalStatus,
    ScheduleEvent,
    TransferSent,
    TransferReceived,
    TedSent,
    TedReceived,
    TedReturned,
    BoletoPaidOtherBank,
    BoletoRegistered,
    BoletoChanged,
    BoletoWriteOff,
    BoletoPaymentConfirmed,
}

wire_enum!(EventType, "event type", {
    ProposalStatus => "proposal.status",
    ScheduleEvent => "schedule.event",
    TransferSent => "banking.transfer.sent",
    TransferReceived => "banking.transfer.received",
    TedSent => "banking.ted.sent",
    TedReceived => "banking.ted.received",
    TedReturned => "banking.ted.returned",
    BoletoPaidOtherBank => "banking.boleto.paid_other_bank",
    BoletoRegistered => "banking.boleto.registered",
    BoletoChanged => "banking.boleto.changed",
    BoletoWriteOff => "banking.boleto.write_off",
    BoletoPaymentConfirmed => "banking.boleto.payment_confirmed",
});

impl EventType {
    /// Only `proposal.status` travels in the query string; every other event needs a body,
    /// which a GET cannot carry.
    pub fn carried_by(self, method: Method) -> bool {
        self == EventType::ProposalStatus || method != Method::Get
    }

    /// What an endpoint subscribes to when it names no event types.
    pub fn defaults_for(method: Method) -> Vec<EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(|e| e.carried_by(method))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_endpoints_take_proposal_status_only() {
        assert_eq!(
            EventType::defaults_for(Method::Get),
            vec![EventType::ProposalStatus]
        );
        assert_eq!(EventType::defaults_for(Method::Post).len(), 12);
        assert!(!EventType::ScheduleEvent.carried_by(Method::Get));
    }

    #[test]
    fn names_round_trip() {
        for e in EventType::ALL {
            assert_eq!(e.as_str().parse::<EventType>().unwrap(), *e);
        }
        assert!("proposal.unknown".parse::<EventType>().is_err());
    }
}
