import { test } from "node:test";
import assert from "node:assert/strict";
import { hasRole, isProductionStack, isRoleGroup, names, ROLE, stackNameClash } from "../../lib/conventions";

test("names are built as the policy pack reads them back", () => {
    const cluster = names.cluster("pycluster", "prod");
    const node = names.appNode(names.appTier(cluster), 2);
    assert.equal(node, "pycluster-prod-app-2");
    assert.ok(hasRole(`${node}-port`, ROLE.app));
    assert.ok(!hasRole(`${node}-port`, ROLE.loadBalancer));
    assert.ok(hasRole(`${names.loadBalancer(cluster)}-port`, ROLE.loadBalancer));
    assert.ok(isRoleGroup(names.securityGroup(cluster, ROLE.loadBalancer), ROLE.loadBalancer));
    assert.ok(!isRoleGroup(names.securityGroup(cluster, ROLE.app), ROLE.loadBalancer));
    assert.ok(hasRole(names.monitoring(cluster), ROLE.monitoring));
});

test("a role word inside another word is not that role; a stack named with a role word is caught", () => {
    assert.ok(!hasRole("myapp-dev-lb", ROLE.app));
    assert.equal(stackNameClash("prod"), undefined);
    assert.equal(stackNameClash("eu-app"), "app");
    assert.equal(stackNameClash("lb"), "lb");
});

test("production: by name or by setting", () => {
    assert.ok(isProductionStack("prod", false));
    assert.ok(isProductionStack(" Production ", false));
    assert.ok(isProductionStack("eu1", true));
    assert.ok(!isProductionStack("staging", false));
});
