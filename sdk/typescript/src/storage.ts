/**
 * Client-side storage: what must survive a restart or a page reload (the mailbox
 * mark, private KeyPackages, group states and their partition positions).
 */
import type { MarkStore, Marks } from "./client.js";

/** A string key-value store. */
export interface Storage {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** Keys starting with prefix. */
  keys(prefix: string): Promise<string[]>;
}

export class MemoryStorage implements Storage {
  readonly map = new Map<string, string>();
  async get(key: string): Promise<string | undefined> {
    return this.map.get(key);
  }
  async set(key: string, value: string): Promise<void> {
    this.map.set(key, value);
  }
  async delete(key: string): Promise<void> {
    this.map.delete(key);
  }
  async keys(prefix: string): Promise<string[]> {
    return [...this.map.keys()].filter((k) => k.startsWith(prefix));
  }
}

/** The subset of the Web Storage API used (window.localStorage). */
export interface WebStorageLike {
  readonly length: number;
  key(i: number): string | null;
  getItem(k: string): string | null;
  setItem(k: string, v: string): void;
  removeItem(k: string): void;
}

/** Keeps everything in localStorage under a namespace (one per user and device). */
export class WebStorage implements Storage {
  constructor(
    private readonly ls: WebStorageLike,
    private readonly ns: string,
  ) {}
  async get(key: string): Promise<string | undefined> {
    return this.ls.getItem(this.ns + key) ?? undefined;
  }
  async set(key: string, value: string): Promise<void> {
    this.ls.setItem(this.ns + key, value);
  }
  async delete(key: string): Promise<void> {
    this.ls.removeItem(this.ns + key);
  }
  async keys(prefix: string): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < this.ls.length; i++) {
      const k = this.ls.key(i);
      if (k !== null && k.startsWith(this.ns + prefix)) out.push(k.slice(this.ns.length));
    }
    return out;
  }
}

/** The mailbox mark in a Storage. */
export class StorageMarkStore implements MarkStore {
  constructor(
    private readonly s: Storage,
    private readonly key = "marks",
  ) {}
  async load(): Promise<Marks | undefined> {
    const v = await this.s.get(this.key);
    if (v === undefined) return undefined;
    const o = JSON.parse(v) as { lastSeq: string; incarnation: string };
    return { lastSeq: BigInt(o.lastSeq), incarnation: o.incarnation };
  }
  async save(m: Marks): Promise<void> {
    await this.s.set(this.key, JSON.stringify({ lastSeq: m.lastSeq.toString(), incarnation: m.incarnation }));
  }
}
