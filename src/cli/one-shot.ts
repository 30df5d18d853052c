// What a short-lived dbops command (exec, console, check-config, audit export) sets before its modules load.
import { z } from 'zod';

/**
 * zod compiles a fast parser for each object schema on its first parse (`new Function`): a process that
 * parses each schema once or twice pays the compiling and never gets the gain. zod reads the setting when
 * a schema is built, so this runs before the command's modules (and their schemas) are imported.
 */
export function oneShotProcess(): void {
  z.config({ jitless: true });
}
