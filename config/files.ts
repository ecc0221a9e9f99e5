/** The machine's file system, as the configuration asks about it (the FileView of a real run). */
import * as fs from "fs";
import type { FileView } from "./types";

export const LOCAL_FILES: FileView = {
    isDirectory: p => fs.existsSync(p) && fs.statSync(p).isDirectory(),
    isFile: p => fs.existsSync(p) && fs.statSync(p).isFile(),
};
