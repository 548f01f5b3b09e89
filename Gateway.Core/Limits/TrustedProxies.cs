using System.Net;
using System.Net.Sockets;

namespace Gateway.Core.Limits;

/// <summary>Reads <see cref="GatewayOptions.TrustedProxies"/>: addresses (<c>10.0.0.5</c>) or CIDR networks (<c>10.0.0.0/8</c>).</summary>
public static class TrustedProxies
{
    /// <summary>The networks, or false when an entry is neither an address nor a network.</summary>
    public static bool TryParse(IEnumerable<string> entries, out List<IPNetwork> networks)
    {
        networks = [];
        foreach (var entry in entries)
        {
            var text = entry.Trim();
            if (IPNetwork.TryParse(text, out var network)) networks.Add(network);
            else if (IPAddress.TryParse(text, out var address))
                networks.Add(new IPNetwork(address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128));
            else return false;
        }
        return true;
    }

    /// <summary>
    /// Makes <paramref name="entries"/> the only proxies believed (ASP.NET Core's forwarded-headers lists, whose defaults
    /// trust loopback); false when there are none, and the <c>X-Forwarded-For</c> header should be ignored altogether.
    /// </summary>
    public static bool ReplaceWith(IEnumerable<string> entries, IList<IPAddress> knownProxies, IList<IPNetwork> knownNetworks)
    {
        if (!TryParse(entries, out var networks) || networks.Count == 0) return false;
        knownProxies.Clear();
        knownNetworks.Clear();
        networks.ForEach(knownNetworks.Add);
        return true;
    }
}
