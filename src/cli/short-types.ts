// What cli/short-commands.ts exports, as types only: cli.ts names them without loading the commands.
export type ShortCommands = typeof import('./short-commands.js');
