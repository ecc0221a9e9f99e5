import { inspect } from "util";

/**
 * A secret configuration value. It prints as "[secret]" everywhere (string
 * conversion, JSON, console.log) so that an error message or a debug dump
 * never leaks it; `reveal()` is the one deliberate way to read it.
 */
export class Secret {
    readonly #value: string;

    constructor(value: string) {
        this.#value = value;
    }

    reveal(): string {
        return this.#value;
    }

    toString(): string {
        return "[secret]";
    }

    toJSON(): string {
        return "[secret]";
    }

    [inspect.custom](): string {
        return "[secret]";
    }
}
