// What `dbops start` runs besides the core: chat surfaces, each connected by its own SDK.

export interface RunningSurface {
  name: 'slack' | 'discord';
  /** Connected and able to take commands (for /readyz). */
  healthy(): boolean;
  /** Why it is not healthy, when it is not. */
  problem(): string | undefined;
  /** Stops taking commands and disconnects. */
  stop(): Promise<void>;
}
