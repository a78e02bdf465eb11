// Memoizes a per-deployment computation (URL parsing, header objects) so it runs once per
// deployment instead of once per request. Keyed weakly: a new config brings new deployments.
import type { Deployment } from '../config/load.js';

export function perDeployment<T>(compute: (deployment: Deployment) => T): (deployment: Deployment) => T {
  const cache = new WeakMap<Deployment, T>();
  return (deployment) => {
    let value = cache.get(deployment);
    if (value === undefined) {
      value = compute(deployment);
      cache.set(deployment, value);
    }
    return value;
  };
}
