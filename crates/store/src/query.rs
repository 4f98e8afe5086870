//! What callers ask a store for and what they get back.

use vouch_types::{
    Device, DeviceClass, DeviceId, DeviceState, GroupName, HardwareSerial, LabelKey, LabelValue,
    OperatorName, Role, Timestamp, TokenId, Vendor, Zone,
};

/// The largest page a store returns.
pub const MAX_PAGE: u32 = 1_000;

/// A filtered, paginated device listing. All filters must hold (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceQuery {
    /// Only devices in this state.
    pub state: Option<DeviceState>,
    /// Only managed (`true`) or unmanaged (`false`) devices.
    pub managed: Option<bool>,
    /// Only devices of this class.
    pub class: Option<DeviceClass>,
    /// Only devices in this zone.
    pub zone: Option<Zone>,
    /// Only devices of this vendor.
    pub vendor: Option<Vendor>,
    /// Only the device with this hardware serial number.
    pub serial: Option<HardwareSerial>,
    /// Only devices in this group.
    pub group: Option<GroupName>,
    /// Only devices with this label set to this value.
    pub label: Option<(LabelKey, LabelValue)>,
    /// Start after this id (the previous page's `next`).
    pub after: Option<DeviceId>,
    /// At most this many (clamped to 1..=[`MAX_PAGE`]).
    pub limit: u32,
}

impl Default for DeviceQuery {
    fn default() -> Self {
        Self {
            state: None,
            managed: None,
            class: None,
            zone: None,
            vendor: None,
            serial: None,
            group: None,
            label: None,
            after: None,
            limit: 100,
        }
    }
}

impl DeviceQuery {
    /// The page size actually used.
    pub fn effective_limit(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE)
    }

    /// The states a device may be in to match `state` and `managed` together (`None`: any state).
    pub fn states(&self) -> Option<Vec<DeviceState>> {
        if self.state.is_none() && self.managed.is_none() {
            return None;
        }
        Some(
            DeviceState::ALL
                .into_iter()
                .filter(|s| self.state.is_none_or(|want| want == *s))
                .filter(|s| self.managed.is_none_or(|m| m == s.is_managed()))
                .collect(),
        )
    }
}

/// One page of devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePage {
    /// The devices, in id order.
    pub devices: Vec<Device>,
    /// The cursor for the next page, if there may be more.
    pub next: Option<DeviceId>,
}

/// What an import batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Devices created.
    pub created: u64,
    /// Devices skipped because their id existed already.
    pub existing: u64,
}

/// An operator's API token as stored: never the secret, only its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's public id (the part of the token that may be shown and logged).
    pub id: TokenId,
    /// Who it was issued to.
    pub operator: OperatorName,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the token's secret part.
    pub secret_hash: [u8; 32],
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl std::fmt::Debug for TokenRecord {
    // The hash stays out of logs too: it is all an attacker needs to test guesses offline.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("operator", &self.operator)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl TokenRecord {
    /// Whether the token may be used at `now`.
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}
