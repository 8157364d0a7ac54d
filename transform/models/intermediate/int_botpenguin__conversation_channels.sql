-- One row per conversation and channel: the primary channel (the first of `platform`, or
-- `unknown` when the API sent none) first, then the others of `platform` and
-- `secondaryPlatform` in the order sent, each once, lower-cased.
with sent as (
    select conversation_id, element, position, 0 as source_rank
    from ({{ botpenguin_array_elements(ref('int_botpenguin__conversations'), 'conversation_id', 'platform') }}) as platforms
    union all
    select conversation_id, element, position, 1 as source_rank
    from ({{ botpenguin_array_elements(ref('int_botpenguin__conversations'), 'conversation_id', 'secondary_platform') }}) as secondary_platforms
),

named as (
    select
        conversation_id,
        lower(trim({{ botpenguin_element_text('element') }})) as channel,
        source_rank,
        position
    from sent
),

first_copies as (
    select
        conversation_id,
        channel,
        source_rank,
        row_number() over (partition by conversation_id order by source_rank, position) as sent_rank
    from (
        select
            *,
            row_number() over (
                partition by conversation_id, channel order by source_rank, position
            ) as copy_rank
        from named
        where channel is not null and channel <> ''
    ) as channels
    where copy_rank = 1
),

primary_channels as (
    select
        conversations.conversation_id,
        coalesce(first_copies.channel, 'unknown') as channel
    from {{ ref('int_botpenguin__conversations') }} as conversations
    left join first_copies
        on conversations.conversation_id = first_copies.conversation_id
        and first_copies.sent_rank = 1
        and first_copies.source_rank = 0
),

every_channel as (
    select conversation_id, channel, true as is_primary, 0 as sent_rank
    from primary_channels
    union all
    select first_copies.conversation_id, first_copies.channel, false as is_primary, first_copies.sent_rank
    from first_copies
    inner join primary_channels
        on first_copies.conversation_id = primary_channels.conversation_id
        and first_copies.channel <> primary_channels.channel
)

select
    every_channel.conversation_id,
    conversations.bot_id,
    every_channel.channel,
    every_channel.is_primary,
    row_number() over (
        partition by every_channel.conversation_id order by every_channel.sent_rank
    ) as channel_position
from every_channel
inner join {{ ref('int_botpenguin__conversations') }} as conversations
    on every_channel.conversation_id = conversations.conversation_id
