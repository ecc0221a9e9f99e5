import { test } from "node:test";
import assert from "node:assert/strict";
import { classifyErrors, describeErrors, okAnswers } from "../../bench/lib/classify";

const noErrors = { connect: 0, read: 0, write: 0, timeout: 0, status: 0 };

test("every connection answered 200: no errors of any kind", () => {
    const e = classifyErrors({ expected: 1000, codes: { "200": 1000 }, errors: noErrors });
    assert.equal(e.total, 0);
    assert.equal(describeErrors(e), "0");
});

test("answers never given count as timeouts (wrk does not count them itself)", () => {
    const e = classifyErrors({ expected: 500, codes: { "200": 40 }, errors: noErrors });
    assert.equal(e.unanswered, 460);
    assert.equal(e.timeout, 460);
    assert.equal(e.total, 460);
    assert.equal(describeErrors(e), "timeout 460 (460 unanswered)");
});

test("late answers are timeouts too, on top of the unanswered", () => {
    const e = classifyErrors({ expected: 100, codes: { "200": 90 }, errors: { ...noErrors, timeout: 5 } });
    assert.equal(e.timeout, 15);
    assert.equal(e.unanswered, 10);
});

test("read and write failures are resets; 5xx and other statuses are told apart", () => {
    const e = classifyErrors({ expected: 5005, codes: { "200": 3000, "502": 1843, "504": 100, "404": 62 }, errors: { ...noErrors, read: 6458, write: 12, status: 2005 } });
    assert.equal(e.reset, 6470);
    assert.equal(e.http5xx, 1943);
    assert.equal(e.otherStatus, 62);
    assert.equal(e.unanswered, 0);
    assert.equal(e.total, 6470 + 1943 + 62);
    assert.equal(describeErrors(e), "reset 6470, 5xx 1943, other 62");
});

test("connect failures are their own kind", () => {
    const e = classifyErrors({ expected: 2500, codes: {}, errors: { ...noErrors, connect: 897, read: 2500 } });
    assert.equal(e.connect, 897);
    assert.equal(e.reset, 2500);
    assert.equal(e.unanswered, 2500);
    assert.equal(describeErrors(e), "connect 897, reset 2500, timeout 2500 (2500 unanswered)");
});

test("without per-code counts, wrk's status counter stands for 5xx", () => {
    const e = classifyErrors({ expected: 0, codes: {}, errors: { ...noErrors, status: 7 } });
    assert.equal(e.http5xx, 7);
});

test("only 2xx answers are OK", () => {
    assert.equal(okAnswers({ "200": 10, "204": 1, "301": 2, "502": 3 }), 11);
});
