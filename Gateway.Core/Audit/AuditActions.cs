namespace Gateway.Core.Audit;

/// <summary>
/// The audit log's action names for the changes the stores record (<c>entity.verb</c>, the entity as the log's <c>entity</c>
/// column names it). The admin app's users record their own (<c>user.*</c>).
/// </summary>
public static class AuditActions
{
    public const string KeyCreate = "key.create";
    public const string KeyUpdate = "key.update";
    public const string KeyRevoke = "key.revoke";
    public const string KeyRotate = "key.rotate";

    public const string ProviderCreate = "provider.create";
    public const string ProviderUpdate = "provider.update";

    public const string ModelCreate = "model.create";
    public const string ModelUpdate = "model.update";

    public const string RouteCreate = "route.create";
    public const string RouteUpdate = "route.update";
    public const string RouteDelete = "route.delete";

    public const string TagBudgetSet = "tag_budget.set";
    public const string TagBudgetDelete = "tag_budget.delete";

    public const string AdminTokenCreate = "admin_token.create";
    public const string AdminTokenRevoke = "admin_token.revoke";
}
