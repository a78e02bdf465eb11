// Who is calling: the platform (master key) or an API key of one org.
export type Principal =
  | { readonly kind: 'platform' }
  | {
      readonly kind: 'key';
      readonly orgId: string;
      readonly keyId: string;
      readonly teamId: string | null;
      readonly role: 'admin' | 'member';
      /** The models this key may use (its own list within the org's); undefined: every model. */
      readonly allowedModels: ReadonlySet<string> | undefined;
      /** Epoch ms, or undefined for keys that never expire. */
      readonly expiresAtMs: number | undefined;
    };

export type KeyPrincipal = Extract<Principal, { kind: 'key' }>;

export function mayUseModel(principal: KeyPrincipal, model: string): boolean {
  return principal.allowedModels === undefined || principal.allowedModels.has(model);
}
