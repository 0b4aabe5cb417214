<#
.SYNOPSIS
    Registers graph-mail-relay's app in Entra ID and creates its client secret.

.DESCRIPTION
    The relay signs in as itself (OAuth 2.0 client credentials), so it needs an app registration,
    its service principal (the "Enterprise application") and a client secret. It reads mail with
    the Microsoft Graph application permission Mail.Read and nothing else.

    How Mail.Read is granted depends on how Exchange restricts the app to the gateway mailboxes:

      -Scoping Rbac (recommended)  Exchange grants "Application Mail.Read" to the service
          principal, limited to the gateway mailboxes (infra/exchange/Grant-RbacMailboxAccess.ps1).
          Entra must NOT also grant Mail.Read: an app's permissions are the union of the Entra
          grant and the Exchange grant, so a tenant-wide consent would reopen every mailbox.
          This script therefore removes any existing consent for Mail.Read.
      -Scoping ApplicationAccessPolicy (legacy)  Entra grants Mail.Read tenant-wide (admin
          consent, done here) and an Application Access Policy narrows it
          (infra/exchange/New-LegacyAccessPolicy.ps1).

    Writes the secret's JSON (the shape of samplconfig/graph-credentials.secret.json) to
    -SecretFile, for `aws secretsmanager create-secret`; delete the file afterwards.

    Needs the Microsoft.Graph PowerShell modules and a Privileged Role Administrator or Global
    Administrator, since granting an application permission is an admin consent.

.EXAMPLE
    ./New-RelayAppRegistration.ps1 -Scoping Rbac -SecretFile ./graph-credentials.json
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [ValidateSet('Rbac', 'ApplicationAccessPolicy')] [string] $Scoping,
    [string] $DisplayName = 'graph-mail-relay',
    # Client secrets expire; the relay then fails with AADSTS7000222. Diarise the renewal.
    [ValidateRange(1, 24)] [int] $SecretMonths = 12,
    [string] $SecretFile = './graph-credentials.secret.json'
)
$ErrorActionPreference = 'Stop'

Connect-MgGraph -NoWelcome -Scopes 'Application.ReadWrite.All', 'AppRoleAssignment.ReadWrite.All'
$tenantId = (Get-MgContext).TenantId

# Microsoft Graph's own service principal, and its Mail.Read *application* role (not the
# delegated scope of the same name).
$graphAppId = '00000003-0000-0000-c000-000000000000'
$graph = Get-MgServicePrincipal -Filter "appId eq '$graphAppId'"
$mailRead = $graph.AppRoles |
    Where-Object { $_.Value -eq 'Mail.Read' -and $_.AllowedMemberTypes -contains 'Application' }

# Single tenant: the relay only ever reads this tenant's gateway mailboxes. The declared
# permission documents the intent; whether it is granted is decided below.
$app = New-MgApplication -DisplayName $DisplayName -SignInAudience AzureADMyOrg `
    -RequiredResourceAccess @{
        ResourceAppId  = $graphAppId
        ResourceAccess = @(@{ Id = $mailRead.Id; Type = 'Role' })
    }
$sp = New-MgServicePrincipal -AppId $app.AppId

$consent = Get-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $sp.Id |
    Where-Object { $_.ResourceId -eq $graph.Id -and $_.AppRoleId -eq $mailRead.Id }
if ($Scoping -eq 'ApplicationAccessPolicy') {
    if (-not $consent) {
        New-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $sp.Id -PrincipalId $sp.Id `
            -ResourceId $graph.Id -AppRoleId $mailRead.Id | Out-Null
    }
} elseif ($consent) {
    # RBAC for Applications adds to Entra grants; it cannot take a tenant-wide grant away.
    Remove-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $sp.Id `
        -AppRoleAssignmentId $consent.Id
}

$secret = Add-MgApplicationPassword -ApplicationId $app.Id -PasswordCredential @{
    DisplayName = 'graph-mail-relay'
    EndDateTime = (Get-Date).AddMonths($SecretMonths)
}
# SecretText is the secret's Value. Its KeyId is not a secret; pasting it instead of the Value
# is what AADSTS7000215 reports.
@{ tenantId = $tenantId; clientId = $app.AppId; clientSecret = $secret.SecretText } |
    ConvertTo-Json | Set-Content -Path $SecretFile -Encoding utf8
Write-Warning "Client secret written to ${SecretFile}: store it in Secrets Manager, then delete it."

# Exchange's New-ServicePrincipal wants the Enterprise application's object id (the service
# principal's), not the app registration's; both are printed so they cannot be confused.
[pscustomobject]@{
    TenantId                 = $tenantId
    ClientId                 = $app.AppId
    AppRegistrationObjectId  = $app.Id
    ServicePrincipalObjectId = $sp.Id
    SecretExpires            = $secret.EndDateTime
}
