"""The CI regression gate: the rule and baseline file (`baseline`), the measurements (`measure`), the gate run
(`gate`)."""
