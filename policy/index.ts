/**
 * CrossGuard pack of the pycluster program. Run it with the program:
 *   pulumi preview --policy-pack policy      (and `pulumi up --policy-pack policy`)
 * The rules live in rules.ts (pure, unit-tested) and their wiring in policies.ts.
 */
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("pycluster", { policies });
