/**
 * The pycluster guardrails as pure functions over plain resource descriptions.
 *
 * Nothing here imports Pulumi: `policies.ts` turns what the policy engine hands over into
 * `ResourceDescription`s, and the unit tests build them by hand. Each check returns the
 * violations it found; an empty list means compliant (or "not something this check is about").
 *
 * Two kinds of checks:
 * - resource checks see one resource's *inputs* before it is created or updated, during preview
 *   and again during `up` (when every input is known). They block a bad resource before it exists.
 * - stack checks see every resource's *outputs* once the program has registered them all, so they
 *   can follow references between resources (a rule's `securityGroupId` to its group, a floating
 *   IP to its port). During `up` they run after the changes are made: preview is the gate.
 *
 * Values not known yet (outputs of resources still to be created, during preview) arrive as
 * `UNKNOWN`. A check never fails a resource on an unknown value: the same check runs again during
 * `up` with the value known.
 */

export * from "./rules/resources";
export * from "./rules/ingress";
export * from "./rules/privateApps";
export * from "./rules/securityGroups";
export * from "./rules/production";
export * from "./rules/images";
