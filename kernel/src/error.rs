use thiserror::Error;

/// Errors the kernel reports. Each names what was wrong and what to do.
#[derive(Debug, Error)]
pub enum KernelError {
    #[error("{what} `{name}` is contributed twice: by {first} and by {second}; remove one of them from the profile")]
    Duplicate {
        what: &'static str,
        name: String,
        first: String,
        second: String,
    },

    #[error("capability crate {crate_name} has an invalid {what} `{name}`: {why}")]
    InvalidName {
        crate_name: String,
        what: &'static str,
        name: String,
        why: &'static str,
    },

    #[error("extension point name `{point}` is claimed by two types, {existing} and {new} (provided by {crate_name}); give one of them another NAME")]
    ExtensionPointClash {
        point: &'static str,
        existing: &'static str,
        new: &'static str,
        crate_name: String,
    },

    #[error("{0}")]
    Config(String),

    #[error("`{name}` is part of {profiles}; this binary is {this}")]
    ElsewhereProfile {
        name: String,
        profiles: String,
        this: String,
    },

    #[error("unknown {what} `{name}`{hint}")]
    Unknown {
        what: &'static str,
        name: String,
        hint: String,
    },
}
