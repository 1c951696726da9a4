use super::wire_enum;

/// Where a delivery stands. `pending` covers both "due later" and "claimed by a worker now".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Dead,
    Canceled,
}

wire_enum!(DeliveryState, "delivery state", {
    Pending => "pending",
    Delivered => "delivered",
    Dead => "dead",
    Canceled => "canceled",
});
