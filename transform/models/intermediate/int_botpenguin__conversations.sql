-- Both streams: a conversation in both (a chat that became a lead, say) counts once, as
-- its latest version (a lead over a chat when both say the same time).
with both_streams as (
    select * from {{ ref('stg_botpenguin__leads') }}
    union all
    select * from {{ ref('stg_botpenguin__chats') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by conversation_id
            order by updated_at desc nulls last, conversation_type desc
        ) as stream_rank
    from both_streams
)

select * from ranked where stream_rank = 1
